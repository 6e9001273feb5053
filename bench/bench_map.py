"""The item map dock at 100k items with its projection cached (issue 10's target: first draw
<= 2 s, no event-loop gap over 50 ms while panning and zooming), timed on the real panel.

    .venv/bin/python bench/bench_map.py [--items 100000 10000] [--steps 30] [--repeat 3]
        [--old REV] [--keep DIR] [--freeze] [--json]

A seeded synthetic map (20 clusters, 15 categories of which 12 get a colour, Zipf
popularity, 5 % cold, a few new items, an image for every item from 8 small PNGs) is handed
to `ItemMapPanel.show_data` on an offscreen Qt (QT_QPA_PLATFORM=offscreen), with a
12-item sequence path and 10 recommendation rings, as the app draws them. Figures:

- first draw: from `show_data` to the first paint of the plot finished (the pending events
  processed, then the viewport painted if they did not paint it);
- open: the whole way a person waits, on a real workspace of that many items (built once
  by bench_catalog_scale.build, with images) whose map is in WS/explore already: from the
  model being set to the map painted, through the worker that reads the cache and the
  items; and the longest event-loop gap meanwhile (a 5 ms timer's late ticks). The model
  is a stand-in holding seeded random vectors: the map only projects them;
- pan/zoom: `--steps` real wheel notches and mouse-drag moves sent to the plot's viewport
  (in, in, out, then a drag of five moves, ...), each followed by the events it posts and a
  paint: the time each step holds the GUI thread is the event-loop gap a person would
  feel; median and max;
- hover: the lookup of the item under the pointer (what a mouse move costs), median and max;
- click: a real mouse click on a point of the whole map (the first one, and the worst of 5),
  until the selection is drawn;
- lasso: selecting the left half of the view (as the lasso's drag ends), until drawn, and
  the worst of five drag moves with that selection drawn;
- thumbnails: zoomed in to a few dozen items, the time to place their thumbnails.

Python's full (generation 2) garbage collections walk every object the imports made
(230k here, more with torch): 35-290 ms of the GUI thread on this shared machine. Making
many objects at once sets them off; the old panel did (per-point records, 100k fetched
rows), the new one does not. The longest collection seen while timing is printed;
`--freeze` times after `gc.freeze()` (what an app can do once its imports are done), to
compare the drawing alone.

`--old REV` also runs the same script on the panel as it is at git revision REV (its gui/
and core/ exported to a temporary folder) and prints both side by side. Each run is a fresh
process; with `--repeat R` old and new take turns R times and each figure is the median of
its R runs (a shared machine's load comes and goes).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_FIRST_S = 2.0
TARGET_GAP_MS = 50.0


def thumbs(img_dir: Path) -> list[str]:
    """8 small PNGs of different colours, the items' images."""
    from PySide6.QtGui import QColor, QImage
    paths = []
    for k in range(8):
        p = img_dir / f"thumb{k}.png"
        if not p.exists():
            img = QImage(72, 108, QImage.Format_RGB32)
            img.fill(QColor.fromHsv(k * 45, 160, 220))
            img.save(str(p))
        paths.append(str(p))
    return paths


def synthetic(n: int, img_dir: Path, seed: int = 0):
    import numpy as np
    from gui.map_data import MapData
    g = np.random.default_rng(seed)
    centres = g.normal(scale=6.0, size=(20, 2))
    cluster = g.integers(0, 20, n)
    xy = centres[cluster] + g.normal(scale=g.uniform(0.3, 1.5, 20)[cluster, None], size=(n, 2))
    cats = np.array([f"Category {k}" for k in range(15)] + [""], dtype=object)
    cat = cats[(cluster + (g.random(n) < 0.2) * g.integers(0, 16, n)) % 16]
    pop = np.minimum(g.zipf(1.6, n), 50_000).astype(np.int64)
    cold, new = g.random(n) < 0.05, g.random(n) < 0.001
    paths = thumbs(img_dir)
    ids = [f"i{k:06d}" for k in range(n)]
    d = MapData(ids, xy, [f"Item {k}" for k in range(n)], cat, pop, cold, new,
                images={i: paths[k % 8] for k, i in enumerate(ids)}, method="pca", cached=True)
    return d


class Vectors:
    """What the map reads of a Recommender: the item vectors (seeded random), ids, manifest."""

    def __init__(self, ws, folder: Path):
        import torch
        self.item_ids = ws.item_ids()
        self.new_ids, self.is_content, self.new_table = [], False, None
        self.table = torch.randn(len(self.item_ids), 64, generator=torch.Generator().manual_seed(0))
        self.manifest, self.folder = {"weights_sha256": "bench-map"}, str(folder)


def prepare_open(root: Path, n: int) -> Path:
    """A workspace of n items with images and interactions, its map cached (built once)."""
    import bench_catalog_scale
    from core.explore.map import item_map
    from core.workspace import Workspace
    path = root / f"ws-{n}"
    if not (path / "bench-map-ready").exists():
        shutil.rmtree(path, ignore_errors=True)
        bench_catalog_scale.build(path, n, 2 * n)
        paths = thumbs(root)
        with Workspace.open(path) as ws:
            with ws.transaction() as db:
                for k, p in enumerate(paths):
                    db.execute("UPDATE items SET image = ? WHERE rowid % 8 = ?", (p, k))
            item_map(ws, Vectors(ws, path / "models" / "bench"), method="pca")
        (path / "bench-map-ready").touch()
    return path


def run_open(ws_path: Path, freeze: bool = False) -> dict:
    """From the model set to the map painted, with the projection cached."""
    import gc
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])
    from core.workspace import Workspace
    from gui.item_map import ItemMapPanel
    from gui.state import Session
    with Workspace.open(ws_path) as ws:
        rec = Vectors(ws, ws_path / "models" / "bench")
    session = Session()
    session.open_workspace(ws_path)
    panel = ItemMapPanel(session)
    panel.method.setCurrentText("pca")
    panel.resize(900, 640)
    panel.show()
    app.processEvents()
    ticks = []
    beat = QTimer(interval=5)
    beat.timeout.connect(lambda: ticks.append(time.perf_counter()))
    beat.start()
    if freeze:
        gc.collect()
        gc.freeze()
    t0 = time.perf_counter()
    session.set_recommender(rec)
    while panel.data is None and time.perf_counter() - t0 < 120:
        app.processEvents()
        time.sleep(0.001)
    app.processEvents()
    panel.plot.viewport().repaint()
    took = time.perf_counter() - t0
    beat.stop()
    gc.unfreeze()
    ticks = [t0] + [t for t in ticks if t > t0] + [time.perf_counter()]
    late = max(b - a for a, b in zip(ticks, ticks[1:]))
    n = len(panel.data) if panel.data is not None else 0
    panel.close()
    from gui.workers import wait_all
    wait_all()
    session.ws.close()
    return {"open_s": took, "open_gap_ms": 1000 * late, "open_items": n}


def run(n: int, steps: int, freeze: bool = False) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import gc
    import numpy as np
    from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt
    from PySide6.QtGui import QMouseEvent, QWheelEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])
    from gui.item_map import ItemMapPanel
    from gui.state import Session

    class Paints(QObject):
        count = 0

        def eventFilter(self, obj, ev):
            if ev.type() == QEvent.Type.Paint:
                Paints.count += 1
            return False

    tmp = tempfile.TemporaryDirectory()
    d = synthetic(n, Path(tmp.name))
    session = Session()
    panel = ItemMapPanel(session)
    panel.resize(900, 640)
    panel.show()
    app.processEvents()
    vp = panel.plot.viewport()
    paints = Paints()
    vp.installEventFilter(paints)

    def settle() -> None:
        """The events a change posted, and a paint of the plot if they did not paint it."""
        before = Paints.count
        app.processEvents()
        if Paints.count == before:
            vp.repaint()

    pauses, started = [0.0], [0.0]

    def on_gc(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])

    if freeze:
        gc.collect()
        gc.freeze()
    gc.callbacks.append(on_gc)
    g = np.random.default_rng(1)
    seq = [d.ids[k] for k in g.choice(n, 12, replace=False)]
    top = [(d.ids[k], 1.0 - j / 10) for j, k in enumerate(g.choice(n, 10, replace=False))]
    t0 = time.perf_counter()
    panel.show_data(d)
    session.set_sequence(seq)
    panel.set_recommendations(top)
    settle()
    first = time.perf_counter() - t0

    view = panel.view
    clicks = []
    for k in g.choice(n, 5, replace=False):      # on the whole map
        at = panel.plot.mapFromScene(view.mapViewToScene(QPointF(*map(float, d.xy[k]))))
        t = time.perf_counter()
        QTest.mouseClick(vp, Qt.LeftButton, Qt.NoModifier, at)
        settle()
        clicks.append(time.perf_counter() - t)

    def send(kind, at, button, buttons) -> None:
        at = QPointF(at)
        app.sendEvent(vp, QMouseEvent(kind, at, vp.mapToGlobal(at), button, buttons, Qt.NoModifier))

    def wheel(notches: int) -> None:            # a mouse wheel turned by some notches
        at = QPointF(vp.rect().center())
        app.sendEvent(vp, QWheelEvent(at, vp.mapToGlobal(at), QPoint(), QPoint(0, 120 * notches),
                                      Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False))

    # what a person does: wheel in, drag about, wheel out, ... with real events on the viewport
    gaps = []
    centre = QPointF(vp.rect().center())
    while len(gaps) < steps:
        for notches in (1, 1, -1):
            t = time.perf_counter()
            wheel(notches)
            settle()
            gaps.append(time.perf_counter() - t)
        side = 1 if len(gaps) % 8 < 4 else -1
        send(QEvent.MouseButtonPress, centre, Qt.LeftButton, Qt.LeftButton)
        for j in range(1, 6):
            time.sleep(0.011)                   # pyqtgraph drops moves above 100 a second
            t = time.perf_counter()
            send(QEvent.MouseMove, centre + QPointF(side * 24 * j, 12 * j), Qt.NoButton, Qt.LeftButton)
            settle()
            gaps.append(time.perf_counter() - t)
        send(QEvent.MouseButtonRelease, centre + QPointF(side * 120, 60), Qt.LeftButton, Qt.NoButton)
        settle()
    gaps = gaps[:steps]

    # a lasso around the left half of the whole map, then a drag with that selection drawn
    view.autoRange(padding=0.04)
    settle()
    (x0, x1), (y0, y1) = view.viewRange()
    t = time.perf_counter()
    panel.select_polygon([(x0, y0), ((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1), (x0, y1)])
    settle()
    lasso = time.perf_counter() - t
    selected = len(panel.selected)
    send(QEvent.MouseButtonPress, centre, Qt.LeftButton, Qt.LeftButton)
    with_selection = []
    for j in range(1, 6):
        time.sleep(0.011)
        t = time.perf_counter()
        send(QEvent.MouseMove, centre + QPointF(20 * j, 0), Qt.NoButton, Qt.LeftButton)
        settle()
        with_selection.append(time.perf_counter() - t)
    send(QEvent.MouseButtonRelease, centre + QPointF(100, 0), Qt.LeftButton, Qt.NoButton)
    settle()
    panel.set_selection([])

    hover = []
    (x0, x1), (y0, y1) = view.viewRange()
    for k in range(30):
        x, y = g.uniform(x0, x1), g.uniform(y0, y1)
        t = time.perf_counter()
        panel.item_at(x, y)
        hover.append(time.perf_counter() - t)

    # zoomed in to a few dozen items: the thumbnails appear (after the panel's short timer)
    k = int(np.argmax(d.popularity))
    w = float(np.sort(np.abs(d.xy - d.xy[k]).max(1))[12])   # ~12 items in a square; the aspect adds some
    view.setRange(xRange=(d.xy[k, 0] - w, d.xy[k, 0] + w), yRange=(d.xy[k, 1] - w, d.xy[k, 1] + w),
                  padding=0)
    settle()
    time.sleep(0.2)
    t = time.perf_counter()
    settle()
    thumbs = time.perf_counter() - t
    shown = panel.thumbnails_shown

    gc.callbacks.remove(on_gc)
    gc.unfreeze()
    panel.close()
    panel.deleteLater()
    app.processEvents()
    from gui.workers import wait_all
    wait_all()
    return {"items": n, "first_draw_s": first, "gap_median_ms": 1000 * statistics.median(gaps),
            "gap_max_ms": 1000 * max(gaps), "hover_median_ms": 1000 * statistics.median(hover),
            "hover_max_ms": 1000 * max(hover), "click_first_ms": 1000 * clicks[0],
            "click_max_ms": 1000 * max(clicks), "lasso_ms": 1000 * lasso, "lasso_items": selected,
            "selected_gap_max_ms": 1000 * max(with_selection), "thumbs_ms": 1000 * thumbs, "thumbs_shown": shown,
            "gc_max_ms": 1000 * max(pauses), "paints": Paints.count}


def run_in(root: Path, args, ws_root: Path) -> list[dict]:
    """One fresh process of this script on the gui/ and core/ under `root`."""
    cmd = [sys.executable, __file__, "--json", "--repeat", "1", "--steps", str(args.steps),
           "--items", *map(str, args.items), "--_root", str(root), "--_ws", str(ws_root)]
    cmd += ["--freeze"] if args.freeze else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=root).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def export(rev: str, dest: Path) -> Path:
    """gui/ and core/ of git revision REV under dest."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "gui", "core"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def medians(runs: list[list[dict]]) -> list[dict]:
    """Per size, each figure's median over the runs."""
    return [{key: (statistics.median(r[k][key] for r in runs) if key != "items" else runs[0][k][key])
             for key in runs[0][k]} for k in range(len(runs[0]))]


ROWS = [("open, map cached (s)", "open_s", TARGET_FIRST_S), ("open: longest gap (ms)", "open_gap_ms", None),
        ("first draw (s)", "first_draw_s", TARGET_FIRST_S), ("pan/zoom gap, median (ms)", "gap_median_ms", None),
        ("pan/zoom gap, max (ms)", "gap_max_ms", TARGET_GAP_MS), ("hover lookup, median (ms)", "hover_median_ms", None),
        ("hover lookup, max (ms)", "hover_max_ms", None), ("first click (ms)", "click_first_ms", None),
        ("click, max of 5 (ms)", "click_max_ms", None), ("lasso of half the map (ms)", "lasso_ms", None),
        ("items it selected", "lasso_items", None), ("drag gap with them, max (ms)", "selected_gap_max_ms", None),
        ("thumbnails placed (ms)", "thumbs_ms", None),
        ("thumbnails shown", "thumbs_shown", None), ("longest GC pause (ms)", "gc_max_ms", None)]


def table(new: list[dict], old: list[dict] | None, rev: str | None) -> str:
    lines = []
    for k, fig in enumerate(new):
        was = old[k] if old else None
        lines.append(f"\n{fig['items']:,} items" + (f" (old = {rev})" if was else ""))
        lines.append(f"  {'':28}" + (f"{'old':>10}" if was else "") + f"{'new':>10}  target  new/target")
        for label, key, target in ROWS:
            cell = (lambda v: f"{v:>10.3f}" if isinstance(v, float) else f"{v:>10}")
            ratio = f"  {target:>6g}  {fig[key] / target:>10.2f}" if target else ""
            lines.append(f"  {label:28}" + (cell(was[key]) if was else "") + cell(fig[key]) + ratio)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, nargs="+", default=[100_000, 10_000])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is shown)")
    ap.add_argument("--old", metavar="REV", help="also time the panel of this git revision")
    ap.add_argument("--json", action="store_true", help="one JSON object per size")
    ap.add_argument("--freeze", action="store_true", help="gc.freeze() before timing")
    ap.add_argument("--keep", metavar="DIR", type=Path,
                    help="keep the built workspaces here and reuse them (default: a temporary folder)")
    ap.add_argument("--_root", help=argparse.SUPPRESS)
    ap.add_argument("--_ws", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws_root = args._ws or args.keep or Path(tmp)
        if args._root:                      # a child: time this tree's panel
            sys.path.insert(0, args._root)
            freeze = args.freeze
            new = [dict(run(n, args.steps, freeze), **run_open(ws_root / f"ws-{n}", freeze))
                   for n in args.items]
            old = None
        else:
            sys.path.insert(0, str(ROOT))
            ws_root.mkdir(parents=True, exist_ok=True)
            for n in args.items:
                prepare_open(ws_root, n)
            old_root = export(args.old, Path(tmp) / "old") if args.old else None
            old_runs, new_runs = [], []
            for _ in range(args.repeat):
                if old_root:
                    old_runs.append(run_in(old_root, args, ws_root))
                new_runs.append(run_in(ROOT, args, ws_root))
            new, old = medians(new_runs), medians(old_runs) if old_runs else None
    if args.json:
        for fig in new:
            print(json.dumps(fig))
        return
    print(table(new, old, args.old))


if __name__ == "__main__":
    main()
