"""What the import wizard asks for per format (core.importers' `sources` keys), and the
import itself as it runs on a worker."""
from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["FORMAT_FIELDS", "FORMAT_INFO", "KEYWORD_CHOICES", "parse_columns", "run_import"]

FORMAT_INFO = {
    "movielens": "MovieLens (movies.dat, ratings.dat or an interactions table, a posters folder)",
    "tsv": "Tab-separated tables with a header (interactions and/or items)",
    "csv": "Comma-separated tables with a header (interactions and/or items)",
    "amazon2018": "Amazon Review Data 2018 (reviews and metadata as JSON lines, .gz allowed)",
    "recbole": "RecBole atomic files (.inter and .item)",
}
# (sources key, label, kind): kind is file, dir, columns or check
FORMAT_FIELDS = {
    "movielens": [("movies", "movies.dat", "file"), ("ratings", "ratings.dat / interactions", "file"),
                  ("posters", "Posters folder", "dir")],
    "tsv": [("interactions", "Interactions file", "file"), ("items", "Items file", "file"),
            ("images_root", "Images folder", "dir"), ("columns", "Column names", "columns")],
    "amazon2018": [("reviews", "Reviews file", "file"), ("meta", "Metadata file", "file"),
                   ("images", "Images folder", "dir"), ("download", "Download images from their URLs", "check")],
    "recbole": [("inter", ".inter file", "file"), ("item", ".item file", "file")],
}
FORMAT_FIELDS["csv"] = FORMAT_FIELDS["tsv"]
KEYWORD_CHOICES = (("clip", "CLIP keywords from the images"), ("catalog-tags", "The catalog's own tags"),
                   ("none", "No image keywords (text only)"))


def parse_columns(text: str) -> dict[str, str]:
    """'user=reviewer, item=asin' -> {'user': 'reviewer', 'item': 'asin'}."""
    out = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"column mapping {part.strip()!r} should look like field=header")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def run_import(target: str, fmt: str, sources: dict, options: dict, features: bool,
               keywords_from: str, clip: dict, progress=None) -> dict:
    """Worker: create the workspace, import, then (optionally) build features."""
    from core.importers import ImportOptions, import_catalog
    from core.workspace import Workspace
    progress = progress or (lambda *a: None)
    created = not Path(target).exists()
    ws = Workspace.create(target)
    try:
        report = import_catalog(ws, fmt, sources, ImportOptions(**options), progress=progress)
    except BaseException:
        ws.close()
        if created:       # a failed import leaves no half-made workspace behind
            shutil.rmtree(target, ignore_errors=True)
        raise
    out = {"import": report, "features": None, "features_error": None}
    try:
        if features:
            from core.features.build import build_features
            out["features"] = build_features(ws, keywords_from=keywords_from, progress=progress, **clip)
    except Exception as e:  # noqa: BLE001 - the catalog is in; features can be built again later
        out["features_error"] = str(e) or type(e).__name__
    finally:
        ws.close()
    return out
