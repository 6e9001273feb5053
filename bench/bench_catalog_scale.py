"""The app's catalog at a large size: build, open, search, filter and first paint, timed.

    .venv/bin/python bench/bench_catalog_scale.py --items 1000000 [--interactions 2000000]
        [--keep DIR] [--migrate] [--json]

Builds a seeded synthetic workspace in a temporary folder (or DIR, reused when it already
holds that many items): item i is "Product i <word> <word> edition" with two words drawn
from a fixed list, categories "<Cat>|Shop", a one-sentence text, and interactions whose
items follow a Zipf law. Then it prints, one JSON object per step:

- build: inserting the items (the FTS5 index is kept by triggers) and the interactions;
- open: `Workspace.open` of the current schema, `counts()` and `popularity()` (what the
  window and the inspector read when a workspace opens), then of an older one (`--migrate`: the
  index dropped and built again on open, once per workspace);
- search: `Workspace.search` (ids ranked, LIMIT 50) and the grid's `search_rowids` (every
  match) over a fixed set of queries, median and worst in ms;
- grid: `load_catalog` (count + title order), `load_extras` (categories, popularity), and
  `filter_rows` for a search, a category and the popularity sort;
- paint: the real `CatalogPanel` (Qt offscreen): open to the first painted screen of
  items, and to categories and popularity loaded, plus the rows read on the GUI thread.
The tests count what these steps touch instead of timing them (tests/test_scale_catalog.py).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("glass steel copper walnut linen amber cobalt maple velvet granite paper cedar "
         "marble bamboo silver wool jade oak ivory coral").split()
CATS = ["Books", "Music", "Garden", "Toys", "Kitchen", "Sports", "Tools", "Beauty"]
QUERIES = ["glass", "gl", "product 4242", "cobalt maple", "kitchen", "ivo", "Product 99", "wool edition",
           "granite 12", "zzz", '"NEAR(" *', "é"]


def emit(args, name, **fig):
    fig = {"step": name, **{k: round(v, 4) if isinstance(v, float) else v for k, v in fig.items()}}
    print(json.dumps(fig) if args.json else f"{name:>8}: " + ", ".join(f"{k}={v}" for k, v in fig.items()
                                                                       if k != "step"), flush=True)


def build(path: Path, n: int, m: int, seed: int = 0) -> dict:
    import numpy as np
    from core.workspace import Workspace
    rng = random.Random(seed)
    now = time.time()
    t0 = time.perf_counter()
    ws = Workspace.create(path)
    with ws.transaction() as db:
        db.executemany(
            "INSERT INTO items (id, title, brand, categories, text, image, is_new, cold, added) "
            "VALUES (?,?,'',?,?,NULL,0,0,?)",
            ((f"i{k:07d}", f"Product {k} {rng.choice(WORDS)} {rng.choice(WORDS)} edition",
              f"{CATS[k % 8]}|Shop", f"A {rng.choice(WORDS)} thing for the {CATS[k % 8].lower()}.",
              now + k) for k in range(n)))
    items_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = np.random.default_rng(seed)
    picks = (gen.zipf(1.3, m) - 1) % n
    with ws.transaction() as db:
        ws.add_interactions(((f"u{k % max(1, m // 20)}", f"i{int(p):07d}", k)
                             for k, p in enumerate(picks)), db)
    inter_s = time.perf_counter() - t0
    ws.close()
    return {"items_s": items_s, "interactions_s": inter_s}


def timed(fn, *a, repeat=1):
    out, best = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*a)
        best.append(time.perf_counter() - t0)
    return out, min(best)


def bench_core(args, path: Path) -> None:
    from core import search as fts
    from core.workspace import Workspace
    _, open_s = timed(lambda: Workspace.open(path).close(), repeat=3)
    with Workspace.open(path) as ws:
        _, counts_s = timed(ws.counts)
        _, pop_s = timed(ws.popularity)
        emit(args, "open", workspace_open_s=open_s, counts_s=counts_s, popularity_s=pop_s)
        ranked, every = [], []
        for q in QUERIES:
            ws.search(q, limit=50)             # warm the page cache once, as a user's second key is
            _, s = timed(ws.search, q, "", 50, repeat=3)
            ranked.append(s * 1000)
            hits, s = timed(fts.search_rowids, ws.db, q, repeat=3)
            every.append(s * 1000)
        emit(args, "search", queries=len(QUERIES), ranked_top50_ms_median=statistics.median(ranked),
             ranked_top50_ms_max=max(ranked), all_matches_ms_median=statistics.median(every),
             all_matches_ms_max=max(every))
        from gui import catalog_data as cd
        d, load_s = timed(cd.load_catalog, ws.db, "title")
        (cats, pop), extras_s = timed(cd.load_extras, ws.db, d.max_rowid)
        d.category_counts, d.popularity = cats, pop
        order = d.orders["title"]
        _, search_s = timed(cd.filter_rows, ws.db, order, d.max_rowid, "glass")
        _, cat_s = timed(cd.filter_rows, ws.db, order, d.max_rowid, "", "Garden")
        _, pop_s = timed(cd.sort_order, ws.db, d, "popularity")
        emit(args, "grid", load_catalog_s=load_s, load_extras_s=extras_s,
             filter_search_s=search_s, filter_category_s=cat_s, sort_popularity_s=pop_s,
             view_mb=round(order.nbytes / 2**20, 1))


def bench_migrate(args, path: Path) -> None:
    import sqlite3
    from core.workspace import DB_NAME, Workspace
    db = sqlite3.connect(path / DB_NAME)
    for t in ("insert", "delete", "update"):
        db.execute(f"DROP TRIGGER IF EXISTS items_fts_{t}")
    db.execute("DROP TABLE IF EXISTS items_fts")
    db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    db.commit()
    db.close()
    _, s = timed(lambda: Workspace.open(path).close())
    emit(args, "migrate", open_v1_and_build_index_s=s)


def bench_paint(args, path: Path) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication
    import gui.catalog as catalog
    import gui.catalog_data as cd
    from gui.state import Session
    app = QApplication.instance() or QApplication([])
    real_page, rows_read = cd.read_page, [0]

    def counting(db, root, rowids):
        rows_read[0] += len(rowids)
        return real_page(db, root, rowids)
    cd.read_page = counting
    session = Session()
    panel = catalog.CatalogPanel(session)
    panel.resize(1000, 800)
    panel.show()
    app.processEvents()
    t0 = time.perf_counter()
    session.open_workspace(path)
    opened = time.perf_counter() - t0
    painted = None
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline and not panel.loaded:
        app.processEvents()
        if painted is None and rows_read[0]:
            painted = time.perf_counter() - t0
        time.sleep(0.002)
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    panel.search.setText("cobalt maple")
    panel.apply_search()
    while panel.busy and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.002)
    search_s = time.perf_counter() - t0
    emit(args, "paint", session_open_s=opened, first_paint_s=painted or float("nan"),
         categories_and_popularity_s=loaded, grid_search_s=search_s, shown=panel.model.rowCount(),
         rows_read_on_gui_thread=rows_read[0])
    session.ws.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--interactions", type=int, default=2_000_000)
    ap.add_argument("--keep", type=Path, help="build (or reuse) the workspace here")
    ap.add_argument("--migrate", action="store_true", help="also time indexing an older workspace")
    ap.add_argument("--no-gui", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = None
    if args.keep:
        path = args.keep
    else:
        tmp = tempfile.mkdtemp(prefix="bench-catalog-")
        path = Path(tmp) / "ws"
    try:
        from core.workspace import Workspace
        have = 0
        if (path / "catalog.sqlite").exists():
            with Workspace.open(path) as ws:
                have = ws.counts()["items"]
        if have != args.items:
            shutil.rmtree(path, ignore_errors=True)
            emit(args, "build", items=args.items, interactions=args.interactions,
                 **build(path, args.items, args.interactions))
        bench_core(args, path)
        if not args.no_gui:
            bench_paint(args, path)
        if args.migrate:
            bench_migrate(args, path)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
