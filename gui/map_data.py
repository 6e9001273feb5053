"""What the item map dock draws, prepared on a worker: positions and per-item columns as
numpy arrays (never one Python object per point on a redraw), colour buckets, and the
geometry of a click, a rectangle or a lasso.

The projection itself is core.explore.map.item_map (cached per model in WS/explore)."""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from core.explore.draw import OTHER, PALETTE, _ramp

COLOUR_BY = ("category", "popularity", "cold", "new")
POPULARITY_LEVELS = 8       # the popularity ramp drawn in 8 steps: one scatter layer each


@dataclass
class MapData:
    ids: list[str]
    xy: np.ndarray                       # [N, 2] float
    titles: list[str]
    category: np.ndarray                 # [N] object (first category, "" if none)
    popularity: np.ndarray               # [N] int
    cold: np.ndarray                     # [N] bool
    new: np.ndarray                      # [N] bool
    images: dict[str, str] = field(default_factory=dict)   # item id -> its image, as stored
    method: str = ""
    model: str = ""
    cached: bool = False
    row: dict[str, int] = field(default_factory=dict)    # item id -> its row
    _codes: tuple | None = field(default=None, repr=False)
    root: str = ""                       # the workspace: stored relative images are in it

    def __post_init__(self):
        if len(self.row) != len(self.ids):
            self.row = {i: k for k, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, item_id: str) -> str | None:
        """As Workspace.image_path, made only for the thumbnails shown (100k os.path calls on
        the worker cost a third of a second)."""
        p = self.images.get(item_id)
        if not p:
            return None
        return p if os.path.isabs(p) or not self.root else os.path.join(self.root, p)

    def category_codes(self) -> tuple[list[str], np.ndarray]:
        """(the categories, most items first; each row's index into them, -1 for none), made
        once: compute_map makes them on the worker (comparing strings over 100k rows takes
        tens of ms, then each colouring by category is integer masks)."""
        if self._codes is None:
            cats = self.category.tolist()
            names = [c for c, _ in Counter(cats).most_common() if c]
            at = {c: k for k, c in enumerate(names)}
            self._codes = names, np.fromiter((at.get(c, -1) for c in cats), dtype=np.int64, count=len(cats))
        return self._codes


def snapshot(rec) -> SimpleNamespace:
    """What core.explore.map reads of a Recommender, copied, so the projection runs without
    holding the model (the live panels keep asking it meanwhile)."""
    new_table = getattr(rec, "new_table", None)
    return SimpleNamespace(table=rec.table.detach().clone(), item_ids=list(rec.item_ids),
                           new_ids=list(getattr(rec, "new_ids", []) or []), is_content=rec.is_content,
                           new_table=None if new_table is None else new_table.detach().clone(),
                           manifest=rec.manifest, folder=rec.folder)


def compute_map(rec, ws_path, method: str = "auto") -> MapData:
    """Worker: the model's item map (from the WS/explore cache when there) with the columns
    the dock colours by. Holds the model's lock only while copying its vectors."""
    from core.explore.map import item_map
    from core.workspace import Workspace
    from gui.model_calls import model_lock
    with model_lock(rec):       # only while copying the vectors: UMAP may take a minute
        snap = snapshot(rec)
    with Workspace.open(ws_path) as ws:
        d = read_columns(ws, item_map(ws, snap, method=method))
    d.category_codes()
    return d


def read_columns(ws, m) -> MapData:
    """The columns core.explore.map.map_rows gives (first category, flags, popularity), and
    image paths, for m.ids, read as columns: map_rows builds an Item and a dict per item,
    4 s of the GIL at 100k items where this takes a few hundred ms."""
    n = len(m.ids)
    at = {i: k for k, i in enumerate(m.ids)}
    titles, category = np.array(m.ids, dtype=object), np.full(n, "", dtype=object)
    cold, new = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    # rows streamed into columns, each tuple freed at once: fetchall's 100k live tuples made
    # Python run full garbage collections (every object the imports made, 100-300 ms of GIL)
    ids, title, cats, flags = [], [], [], []
    for row in ws.db.execute(
            "SELECT id, COALESCE(NULLIF(title, ''), id), CASE WHEN instr(categories, '|') > 0 "
            "THEN substr(categories, 1, instr(categories, '|') - 1) ELSE COALESCE(categories, '') END, "
            "(cold != 0) + 2 * (is_new != 0) FROM items"):
        ids.append(row[0])
        title.append(row[1])
        cats.append(row[2])
        flags.append(row[3])
    k = np.fromiter((at.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
    ok = k >= 0
    titles[k[ok]] = np.array(title, dtype=object)[ok]
    category[k[ok]] = np.array(cats, dtype=object)[ok]
    flag = np.array(flags, dtype=np.int64)[ok]
    cold[k[ok]], new[k[ok]] = (flag & 1) > 0, (flag & 2) > 0
    images = dict(ws.db.execute("SELECT id, image FROM items WHERE image IS NOT NULL AND image != ''"))
    popularity = np.zeros(n, dtype=np.int64)
    for item, count in ws.popularity().items():
        k = at.get(item)
        if k is not None:
            popularity[k] = count
    return MapData(list(m.ids), np.asarray(m.xy, dtype=np.float64).reshape(-1, 2), titles.tolist(),
                   category, popularity, cold, new, images, m.method, m.model, m.cached, row=at,
                   root=str(ws.path))


def buckets(d: MapData, colour: str) -> list[tuple[str, tuple[int, int, int], np.ndarray]]:
    """(legend label, RGB, row indices) per colour, drawn in this order (grey first, so the
    coloured points sit on top). Every row is in exactly one bucket."""
    if colour not in COLOUR_BY:
        raise ValueError(f"colour by {colour!r}: choose one of {', '.join(COLOUR_BY)}")
    n = len(d)
    if colour == "category":
        names, code = d.category_codes()
        top = names[:len(PALETTE)]
        code = np.where(code < len(top), code, -1)
        out = [("other" if top else "no category", OTHER, np.flatnonzero(code < 0))]
        out += [(c, PALETTE[k], np.flatnonzero(code == k)) for k, c in enumerate(top)]
        return [b for b in out if len(b[2])]
    if colour == "popularity":
        hi = math.log1p(int(d.popularity.max())) if n else 0.0
        t = np.log1p(d.popularity) / (hi or 1.0)
        level = np.minimum((t * POPULARITY_LEVELS).astype(int), POPULARITY_LEVELS - 1)
        lo = np.expm1(np.arange(POPULARITY_LEVELS) / POPULARITY_LEVELS * hi)
        return [(f"≥ {int(round(lo[k])):,} interactions", _ramp(k / (POPULARITY_LEVELS - 1)),
                 np.flatnonzero(level == k)) for k in range(POPULARITY_LEVELS) if (level == k).any()]
    flag = d.cold if colour == "cold" else d.new
    word = "cold-start" if colour == "cold" else "new"
    out = [(f"not {word}", OTHER, np.flatnonzero(~flag)), (word, PALETTE[5], np.flatnonzero(flag))]
    return [b for b in out if len(b[2])]


def nearest(xy: np.ndarray, x: float, y: float, rx: float, ry: float) -> int | None:
    """Row of the point nearest (x, y) within the ellipse of radii (rx, ry) (a few pixels in
    data units), or None."""
    if not len(xy) or rx <= 0 or ry <= 0:
        return None
    d2 = ((xy[:, 0] - x) / rx) ** 2 + ((xy[:, 1] - y) / ry) ** 2
    k = int(np.argmin(d2))
    return k if d2[k] <= 1.0 else None


def in_rect(xy: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Rows inside the rectangle (corners in any order)."""
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    return np.flatnonzero((xy[:, 0] >= xa) & (xy[:, 0] <= xb) & (xy[:, 1] >= ya) & (xy[:, 1] <= yb))


def in_polygon(xy: np.ndarray, poly) -> np.ndarray:
    """Rows inside the polygon (even-odd rule, vectorised over points, one pass per edge)."""
    poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 3 or not len(xy):
        return np.zeros(0, dtype=np.int64)
    x, y = xy[:, 0], xy[:, 1]
    inside = np.zeros(len(xy), dtype=bool)
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (ay > y) != (by > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (x < xc)
    return np.flatnonzero(inside)
