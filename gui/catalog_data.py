"""What the catalog grid reads, as compact arrays: no Qt, no Python object per item.

A view of the catalog is a numpy array of items.rowid (8 bytes an item) in the order
shown. SQLite sorts (and releases the GIL while it does); FTS5 searches
(core/search.py); numpy filters with a boolean mask indexed by rowid. The grid reads
titles and images a page of rows at a time (`read_page`), only for the rows on screen.
These functions run on a worker with its own connection, except on small catalogs
(`SYNC_ROWS`), where they are quick enough to answer on the GUI thread.
"""
from __future__ import annotations

import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from core import search as fts

SORTS = (("title", "Title"), ("popularity", "Most popular"), ("id", "Id"), ("newest", "Newest"))
NEW_TAG = "\x00new"         # the "new items" entry of the category filter
SYNC_ROWS = 20_000          # up to this many items, filters apply at once (about a millisecond)
PAGE = 256                  # rows read from SQLite at a time
MAX_CATEGORIES = 1000

_ORDER_SQL = {
    "id": "SELECT rowid FROM items ORDER BY id",
    "title": "SELECT rowid FROM items ORDER BY title COLLATE NOCASE, id",
    "newest": "SELECT rowid FROM items ORDER BY is_new DESC, added DESC, rowid DESC",
}


@dataclass
class CatalogData:
    """One workspace's catalog as the grid holds it."""
    total: int = 0
    max_rowid: int = 0
    has_new: bool = False
    orders: dict[str, np.ndarray] = field(default_factory=dict)   # sort key -> rowids
    popularity: np.ndarray | None = None      # interactions per rowid (int32), once loaded
    category_counts: list[tuple[str, int]] | None = None          # most common first, once loaded


def _rowids(db: sqlite3.Connection, sql: str, params: tuple = (), count: int = -1) -> np.ndarray:
    return np.fromiter((r[0] for r in db.execute(sql, params)), dtype=np.int64, count=count)


def load_catalog(db: sqlite3.Connection, sort: str = "title") -> CatalogData:
    """What the first paint needs: the count and one sort order."""
    total, top = db.execute("SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM items").fetchone()
    d = CatalogData(total=total, max_rowid=top)
    d.has_new = db.execute("SELECT 1 FROM items WHERE is_new=1 LIMIT 1").fetchone() is not None
    if sort == "popularity":
        d.popularity = load_popularity(db, top)
    d.orders[sort] = sort_order(db, d, sort)
    return d


def sort_order(db: sqlite3.Connection, d: CatalogData, sort: str) -> np.ndarray:
    if sort == "popularity":
        by_id = d.orders.get("id")
        if by_id is None:
            by_id = _rowids(db, _ORDER_SQL["id"], count=d.total)
        pop = d.popularity if d.popularity is not None else load_popularity(db, d.max_rowid)
        return by_id[np.argsort(-pop[by_id], kind="stable")]    # ties keep the id order
    if sort not in _ORDER_SQL:
        raise ValueError(f"unknown sort {sort!r}; one of {', '.join(k for k, _ in SORTS)}")
    return _rowids(db, _ORDER_SQL[sort], count=d.total)


def load_popularity(db: sqlite3.Connection, max_rowid: int) -> np.ndarray:
    pop = np.zeros(max_rowid + 1, dtype=np.int32)
    rows = db.execute("SELECT items.rowid, n FROM (SELECT item, COUNT(*) AS n FROM interactions "
                      "GROUP BY item) JOIN items ON items.id = item")
    for rid, n in rows:
        pop[rid] = n
    return pop


def load_categories(db: sqlite3.Connection) -> list[tuple[str, int]]:
    # SQLite groups the repeated category strings (far fewer than items); Python splits those
    counts: Counter = Counter()
    for cats, n in db.execute("SELECT categories, COUNT(*) FROM items WHERE categories != '' "
                              "GROUP BY categories"):
        for c in set(cats.split("|")):
            if c:
                counts[c] += n
    return counts.most_common(MAX_CATEGORIES)


def load_extras(db: sqlite3.Connection, max_rowid: int):
    """After the first paint: the category filter's entries and the popularity of each item."""
    return load_categories(db), load_popularity(db, max_rowid)


def filter_rows(db: sqlite3.Connection, order: np.ndarray, max_rowid: int, search: str = "",
                category: str = "") -> np.ndarray:
    """The rowids of `order` that pass the search (every word as a prefix, FTS5) and the
    category (NEW_TAG: the user's new items), in `order`'s order."""
    keep = None
    if category:
        if category == NEW_TAG:
            match = _rowids(db, "SELECT rowid FROM items WHERE is_new=1")
        else:
            match = _rowids(db, "SELECT rowid FROM items WHERE instr('|' || categories || '|', ?) > 0",
                            (f"|{category}|",))
        keep = _mask(match, max_rowid)
    if search.strip():
        mask = _mask(np.asarray(fts.search_rowids(db, search), dtype=np.int64), max_rowid)
        keep = mask if keep is None else keep & mask
    if keep is None:
        return order
    return order[keep[order]]


def _mask(rowids: np.ndarray, max_rowid: int) -> np.ndarray:
    m = np.zeros(max_rowid + 1, dtype=bool)
    m[rowids[rowids <= max_rowid]] = True      # items added after the load are not in the view
    return m


def read_page(db: sqlite3.Connection, root: str, rowids: list[int]) -> list[tuple]:
    """(id, title, categories, image path or '', is_new) for each rowid, in that order.
    A row deleted meanwhile reads as an empty item until the next reload."""
    marks = ",".join("?" * len(rowids))
    got = {r[0]: r for r in db.execute(
        f"SELECT rowid, id, title, categories, image, is_new FROM items WHERE rowid IN ({marks})",
        rowids)}
    out = []
    for rid in rowids:
        r = got.get(rid)
        if r is None:
            out.append(("", "", "", "", False))
            continue
        _, iid, title, cats, im, new = r
        im = "" if not im else im if os.path.isabs(im) else os.path.join(root, im)
        out.append((iid, title or iid, cats or "", im, bool(new)))
    return out


# ---- on a worker: each opens its own connection -----------------------------
def load_catalog_at(ws_path, sort: str = "title") -> CatalogData:
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws:
        return load_catalog(ws.db, sort)


def load_extras_at(ws_path, max_rowid: int):
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws:
        return load_extras(ws.db, max_rowid)


def view_at(ws_path, d: CatalogData, order: np.ndarray | None, sort: str, search: str,
            category: str) -> tuple[np.ndarray, np.ndarray]:
    """(the sort order, the rows shown); the order is computed when it is not known yet."""
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws:
        if order is None:
            order = sort_order(ws.db, d, sort)
        return order, filter_rows(ws.db, order, d.max_rowid, search, category)
