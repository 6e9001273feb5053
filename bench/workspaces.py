"""The benchmark workspaces: the real data sets of ../shared/datasets, imported and
featurised once, cached under bench/results/, and rebuilt whenever what built them changes.

    ws, info = prepare("scientific", users=None, cold_share=0.05, clip=False)

The cache key covers the data set, the user subset, the cold share, the keyword source and
the code that imports and featurises (core/importers, core/features, core/splits.py,
core/workspace.py): a change to any of them rebuilds the workspace. `info` says whether the
cache was reused, which features were built, and the import and feature timings. The key
file is written last, so a build that stopped half-way is never reused; with clip=True a
build that ends without image features stops with CLIP's message.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
RESULTS = REPO / "bench" / "results"
DATASETS = {"ml-1m": SHARED / "ml-1m-posters", "scientific": SHARED / "amazon-scientific"}
_KEY_FILE = "bench-key.json"


def _code_hash() -> str:
    h = hashlib.sha256()
    core = REPO / "core"
    files = sorted([*(core / "importers").glob("*.py"), *(core / "features").glob("*.py"),
                    core / "splits.py", core / "workspace.py"])
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _user_subset(src: Path, out: Path, users: int, user_of) -> Path:
    """The lines of the first `users` users of a line file (keeps any header line)."""
    seen, lines = set(), []
    opener = __import__("gzip").open if src.suffix == ".gz" else open
    with opener(src, "rt") as f:
        for n, line in enumerate(f):
            u = user_of(line, n)
            if u is None:
                lines.append(line)
                continue
            if u not in seen and len(seen) >= users:
                continue
            seen.add(u)
            lines.append(line)
    out.write_text("".join(lines))
    return out


def _sources(dataset: str, path: Path, users: int | None) -> tuple[str, dict]:
    data = DATASETS[dataset]
    if dataset == "ml-1m":
        inter = data / "interactions.tsv"
        if users:
            inter = _user_subset(inter, path / "subset-interactions.tsv", users,
                                 lambda line, n: None if n == 0 else line.split("\t", 1)[0])
        return "movielens", {"movies": data / "movies.dat", "interactions": inter,
                             "posters": data / "posters"}
    reviews = data / "reviews.json.gz"
    if users:
        reviews = _user_subset(reviews, path / "subset-reviews.json", users,
                               lambda line, n: json.loads(line)["reviewerID"])
    return "amazon2018", {"reviews": reviews, "meta": data / "meta.json.gz"}


def prepare(dataset: str, users: int | None = None, cold_share: float = 0.05, clip: bool = False,
            log=print):
    """(Workspace, info) for a benchmark data set; built once per key, reused after."""
    from core.workspace import Workspace
    if dataset not in DATASETS:
        raise SystemExit(f"--dataset must be one of {', '.join(DATASETS)}")
    if not DATASETS[dataset].is_dir():
        raise SystemExit(f"{DATASETS[dataset]} is absent: this benchmark needs the shared data set")
    keywords = "clip" if clip else "none"
    key = {"dataset": dataset, "users": users, "cold_share": cold_share, "keywords": keywords,
           "code": _code_hash()}
    path = RESULTS / (f"ws-{dataset}" + (f"-{users}u" if users else ""))
    kf = path / _KEY_FILE
    if kf.is_file():
        saved = json.loads(kf.read_text())
        on_disk = sorted(p.stem for p in (path / "ws" / "features").glob("*.safetensors"))
        if saved.get("key") == key and on_disk == saved["info"]["features"]:
            log(f"workspace {path.name}: reused (built {saved['built']}, same data, options and "
                f"code; features {', '.join(on_disk)}; import and feature timings are the build's)")
            return Workspace.open(path / "ws"), {**saved["info"], "reused": True}
        if saved.get("key") == key:
            log(f"workspace {path.name}: rebuilding (feature files {on_disk}, built with "
                f"{saved['info']['features']})")
        else:
            log(f"workspace {path.name}: rebuilding (built with {saved.get('key')}, now {key})")
    elif path.exists():
        log(f"workspace {path.name}: rebuilding (no {_KEY_FILE}: a build that did not finish)")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    from core.features.build import build_features
    from core.importers import ImportOptions, import_catalog
    ws = Workspace.create(path / "ws")
    fmt, sources = _sources(dataset, path, users)
    t0 = time.perf_counter()
    rep = import_catalog(ws, fmt, sources, ImportOptions(kcore=5, cold_share=cold_share))
    import_s = time.perf_counter() - t0
    log(f"import: {rep.users} users, {rep.items} items, {rep.interactions} interactions, "
        f"{rep.cold_items} cold, {import_s:.0f}s")
    t0 = time.perf_counter()
    # no fallback: when CLIP was asked for and cannot run, the benchmark stops and says why
    feats = build_features(ws, keywords_from=keywords)
    features_s = time.perf_counter() - t0
    modalities = sorted(p.stem for p in ws.features_dir.glob("*.safetensors"))
    if clip and "image" not in modalities:
        # build_features falls back to text only when CLIP cannot load; a benchmark must not
        raise SystemExit(f"--clip was asked for but no image features were built: "
                         f"{feats.clip_message or 'unknown reason'}")
    log(f"features ({', '.join(modalities)}): {features_s:.0f}s")
    info = {"users": rep.users, "items": rep.items, "interactions": rep.interactions,
            "cold_items": rep.cold_items, "import_s": round(import_s, 1),
            "features_s": round(features_s, 1), "features": modalities,
            "text_items": feats.text_items}
    kf.write_text(json.dumps({"key": key, "info": info,
                              "built": time.strftime("%Y-%m-%d %H:%M")}, indent=1))
    return ws, {**info, "reused": False}
