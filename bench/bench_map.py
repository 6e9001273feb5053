"""The item map dock at 100k items with its projection cached (issue 10's target: first draw
<= 2 s, no event-loop gap over 50 ms while panning and zooming), timed on the real panel.

    .venv/bin/python bench/bench_map.py [--items 100000 10000] [--steps 30] [--repeat 3]
        [--old REV] [--json]

A seeded synthetic map (20 clusters, 15 categories of which 12 get a colour, Zipf
popularity, 5 % cold, a few new items, an image for every item from 8 small PNGs) is handed
to `ItemMapPanel.show_data` on an offscreen Qt (QT_QPA_PLATFORM=offscreen), with a
12-item sequence path and 10 recommendation rings, as the app draws them. Figures:

- first draw: from `show_data` to the first paint of the plot finished (the pending events
  processed, then the viewport painted if they did not paint it);
- pan/zoom: `--steps` view changes (zoom in, pan, zoom out, ... as a wheel and a drag do),
  each followed by the events it posts and a paint: the time each step holds the GUI thread
  is the event-loop gap a person would feel; median and max;
- hover: the lookup of the item under the pointer (what a mouse move costs), median and max;
- thumbnails: zoomed in to a few dozen items, the time to place their thumbnails.

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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_FIRST_S = 2.0
TARGET_GAP_MS = 50.0


def synthetic(n: int, img_dir: Path, seed: int = 0):
    import numpy as np
    from PySide6.QtGui import QColor, QImage
    from gui.map_data import MapData
    g = np.random.default_rng(seed)
    centres = g.normal(scale=6.0, size=(20, 2))
    cluster = g.integers(0, 20, n)
    xy = centres[cluster] + g.normal(scale=g.uniform(0.3, 1.5, 20)[cluster, None], size=(n, 2))
    cats = np.array([f"Category {k}" for k in range(15)] + [""], dtype=object)
    cat = cats[(cluster + (g.random(n) < 0.2) * g.integers(0, 16, n)) % 16]
    pop = np.minimum(g.zipf(1.6, n), 50_000).astype(np.int64)
    cold, new = g.random(n) < 0.05, g.random(n) < 0.001
    paths = []
    for k in range(8):
        p = img_dir / f"thumb{k}.png"
        img = QImage(72, 108, QImage.Format_RGB32)
        img.fill(QColor.fromHsv(k * 45, 160, 220))
        img.save(str(p))
        paths.append(str(p))
    ids = [f"i{k:06d}" for k in range(n)]
    d = MapData(ids, xy, [f"Item {k}" for k in range(n)], cat, pop, cold, new,
                images={i: paths[k % 8] for k, i in enumerate(ids)}, method="pca", cached=True)
    return d


def run(n: int, steps: int) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    from PySide6.QtCore import QEvent, QObject
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
    (x0, x1), (y0, y1) = view.viewRange()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    gaps = []
    for k in range(steps):
        t = time.perf_counter()
        kind = k % 4
        if kind == 0:
            view.scaleBy((0.7, 0.7), center=(cx, cy))          # a wheel step in
        elif kind in (1, 2):
            (a, b), (c, e) = view.viewRange()
            view.translateBy(x=(b - a) * 0.15 * (1 if k % 8 < 4 else -1), y=(e - c) * 0.1)   # a drag
        else:
            view.scaleBy((1.2, 1.2))                           # a wheel step out
        settle()
        gaps.append(time.perf_counter() - t)

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

    panel.close()
    panel.deleteLater()
    app.processEvents()
    from gui.workers import wait_all
    wait_all()
    return {"items": n, "first_draw_s": first, "gap_median_ms": 1000 * statistics.median(gaps),
            "gap_max_ms": 1000 * max(gaps), "hover_median_ms": 1000 * statistics.median(hover),
            "hover_max_ms": 1000 * max(hover), "thumbs_ms": 1000 * thumbs, "thumbs_shown": shown,
            "paints": Paints.count}


def run_in(root: Path, args) -> list[dict]:
    """One fresh process of this script on the gui/ and core/ under `root`."""
    cmd = [sys.executable, __file__, "--json", "--repeat", "1", "--steps", str(args.steps),
           "--items", *map(str, args.items), "--_root", str(root)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=root).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def export(rev: str, dest: Path) -> Path:
    """gui/ and core/ of git revision REV under dest."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "gui", "core"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def medians(runs: list[list[dict]]) -> list[dict]:
    """Per size, each figure's median over the runs."""
    return [{key: (statistics.median(r[k][key] for r in runs) if key != "items" else runs[0][k][key])
             for key in runs[0][k]} for k in range(len(runs[0]))]


ROWS = [("first draw (s)", "first_draw_s", TARGET_FIRST_S), ("pan/zoom gap, median (ms)", "gap_median_ms", None),
        ("pan/zoom gap, max (ms)", "gap_max_ms", TARGET_GAP_MS), ("hover lookup, median (ms)", "hover_median_ms", None),
        ("hover lookup, max (ms)", "hover_max_ms", None), ("thumbnails placed (ms)", "thumbs_ms", None),
        ("thumbnails shown", "thumbs_shown", None)]


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
    ap.add_argument("--_root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._root or args.repeat == 1 and not args.old:
        sys.path.insert(0, args._root or str(ROOT))
        new = [run(n, args.steps) for n in args.items]
        old = None
    else:
        with tempfile.TemporaryDirectory() as tmp:
            old_root = export(args.old, Path(tmp)) if args.old else None
            old_runs, new_runs = [], []
            for _ in range(args.repeat):
                if old_root:
                    old_runs.append(run_in(old_root, args))
                new_runs.append(run_in(ROOT, args))
        new, old = medians(new_runs), medians(old_runs) if old_runs else None
    if args.json:
        for fig in new:
            print(json.dumps(fig))
        return
    print(table(new, old, args.old))


if __name__ == "__main__":
    main()
