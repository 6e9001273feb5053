"""The item map: a 2-D projection of a model's item vectors, cached per model.

    m = item_map(ws, rec)                   # UMAP up to UMAP_AUTO_MAX items, PCA above
    rows = map_rows(ws, m)                  # item_id, x, y, title, cold, new, popularity, category
    write_csv(rows, "map.csv"); write_png(rows, "map.png", colour="category")

The vectors are the model's scoring table (the rows `Recommender.recommend` multiplies
with), so items the model ranks alike sit together. A projection is stored in
WS/explore/map-<key>.safetensors, key = sha256 of (weights hash, method, item ids), and
read back instead of recomputed; new items change the ids and so the key.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.explore.items import item_info, model_items

METHODS = ("auto", "umap", "pca")
UMAP_AUTO_MAX = 20_000   # "auto" uses PCA above this (UMAP takes minutes there on a few cores)
UMAP_MIN = 20            # UMAP needs a neighbourhood; tiny catalogs get PCA
CSV_COLUMNS = ("item_id", "x", "y", "title", "cold", "new", "popularity", "category")
computed = {"count": 0}  # projections computed in this process (not read from a cache)


@dataclass
class ItemMap:
    """ids[i] is drawn at xy[i]; method is "umap" or "pca"; cached says it was read back."""
    ids: list[str]
    xy: np.ndarray
    method: str
    model: str
    cached: bool
    path: Path | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model": self.model, "method": self.method, "items": len(self.ids),
                "cached": self.cached, "cache": str(self.path) if self.path else None,
                "seconds": round(self.seconds, 3)}


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_method(method: str, n: int) -> str:
    """"auto" -> "umap" when umap-learn imports and UMAP_MIN <= n <= UMAP_AUTO_MAX, else "pca"."""
    if method not in METHODS:
        raise InputError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "umap" and not umap_available():
        raise InputError("--method umap: umap-learn is not installed (pip install umap-learn)")
    if method == "auto":
        return "umap" if UMAP_MIN <= n <= UMAP_AUTO_MAX and umap_available() else "pca"
    return "pca" if n < UMAP_MIN else method


def pca_2d(x: np.ndarray) -> np.ndarray:
    """[N, K] -> [N, 2] on the two leading principal axes, via the K x K covariance (exact,
    fast for tall N), signs fixed so the result does not depend on the solver."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return np.zeros((len(x), 2), dtype=np.float32)
    xc = x - x.mean(0)
    vals, vecs = np.linalg.eigh(xc.T @ xc)
    axes = vecs[:, ::-1][:, :2]
    if axes.shape[1] < 2:
        axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
    axes = axes * np.where(axes[np.abs(axes).argmax(0), [0, 1]] < 0, -1, 1)
    return (xc @ axes).astype(np.float32)


def umap_2d(x: np.ndarray, seed: int | None = None) -> np.ndarray:
    """[N, K] -> [N, 2] with UMAP on cosine distance (scores are dot products of normalised
    modality vectors, so cosine is the model's own notion of alike). seed=None runs on
    every core; a seed makes it reproducible but single-threaded."""
    import umap
    n = len(x)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), min_dist=0.1, metric="cosine",
                        init="pca", random_state=seed, n_jobs=1 if seed is not None else -1,
                        low_memory=True)
    return np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float32)


def project(x: np.ndarray, method: str = "auto", seed: int | None = None) -> tuple[np.ndarray, str]:
    """(xy [N, 2], method used) for vectors x [N, K]; no caching."""
    used = resolve_method(method, len(x))
    computed["count"] += 1
    return (umap_2d(x, seed) if used == "umap" else pca_2d(x)), used


def cache_key(weights_sha256: str, method: str, ids: list[str]) -> str:
    h = hashlib.sha256(f"msm4sr-map:1\n{weights_sha256}\n{method}\n".encode())
    for i in ids:
        h.update(i.encode() + b"\0")
    return h.hexdigest()


def cache_dir(ws) -> Path:
    return Path(ws.path) / "explore"


def _read_cache(path: Path, ids: list[str]) -> np.ndarray | None:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    try:
        xy = load_file(str(path))["xy"]
    except (OSError, SafetensorError, KeyError, ValueError):
        return None   # missing or torn: recompute
    return xy if xy.shape == (len(ids), 2) and np.isfinite(xy).all() else None


def _write_cache(path: Path, xy: np.ndarray, meta: dict) -> None:
    from safetensors.numpy import save
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(save({"xy": np.ascontiguousarray(xy, dtype=np.float32)},
                         metadata={k: str(v) for k, v in meta.items()}))
    os.replace(tmp, path)


def item_map(ws, rec, method: str = "auto", refresh: bool = False, seed: int | None = None) -> ItemMap:
    """The 2-D map of every item `rec` can rank (catalog + new items), from the workspace's
    cache when there (refresh=True recomputes). Slow the first time with UMAP: call it off
    the GUI thread."""
    import time
    ids, table = model_items(rec)
    used = resolve_method(method, len(ids))
    key = cache_key(rec.manifest["weights_sha256"], used, ids)
    path = cache_dir(ws) / f"map-{key[:24]}.safetensors"
    name = Path(rec.folder).name
    t0 = time.perf_counter()
    if not refresh:
        xy = _read_cache(path, ids)
        if xy is not None:
            return ItemMap(ids, xy, used, name, True, path, time.perf_counter() - t0)
    xy, used = project(table.detach().cpu().numpy(), used, seed)
    _write_cache(path, xy, {"method": used, "weights_sha256": rec.manifest["weights_sha256"],
                            "items": len(ids), "key": key})
    return ItemMap(ids, xy, used, name, False, path, time.perf_counter() - t0)


def map_rows(ws, m: ItemMap) -> list[dict]:
    """One dict per item, in CSV_COLUMNS order (category: the first of its categories)."""
    info = item_info(ws)
    rows = []
    for i, (x, y) in zip(m.ids, m.xy.tolist()):
        d = info.get(i, {"title": "", "category": "", "cold": False, "new": False, "popularity": 0})
        rows.append({"item_id": i, "x": round(x, 5), "y": round(y, 5), "title": d["title"],
                     "cold": int(d["cold"]), "new": int(d["new"]), "popularity": d["popularity"],
                     "category": d["category"]})
    return rows


def write_csv(rows: list[dict], path) -> Path:
    path = Path(path)
    cols = [c for c in CSV_COLUMNS if c != "category" or any(r["category"] for r in rows)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def write_json(m: ItemMap, rows: list[dict], path) -> Path:
    Path(path).write_text(json.dumps(dict(m.to_dict(), rows=rows)))
    return Path(path)


def write_png(rows: list[dict], path, colour: str = "category", size: int = 1000) -> Path:
    """A scatter of the map with Pillow (core stays free of Qt and matplotlib)."""
    from core.explore.draw import scatter_png
    return scatter_png(rows, Path(path), colour, size)
