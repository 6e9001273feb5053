"""The item map as a PNG, drawn with Pillow: points coloured by category, popularity,
cold or new, and a small legend."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from core.errors import InputError

COLOURS = ("category", "popularity", "cold", "new")
# Okabe-Ito and Tableau hues: distinguishable, also for most colour-blind readers
PALETTE = [(0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233),
           (213, 94, 0), (240, 228, 66), (148, 103, 189), (140, 86, 75), (127, 127, 127),
           (188, 189, 34), (23, 190, 207)]
OTHER = (200, 200, 200)


def _ramp(t: float) -> tuple[int, int, int]:
    """Dark blue (0) to yellow (1), a viridis-like ramp."""
    stops = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    return tuple(int(a + (b - a) * f) for a, b in zip(stops[i], stops[i + 1]))


def colours_for(rows: list[dict], colour: str) -> tuple[list[tuple], list[tuple[str, tuple]]]:
    """(one RGB per row, legend entries)."""
    if colour not in COLOURS:
        raise InputError(f"--colour {colour!r}: choose one of {', '.join(COLOURS)}")
    if colour == "category":
        top = [c for c, _ in Counter(r.get("category") or "" for r in rows).most_common() if c][:len(PALETTE)]
        pick = {c: PALETTE[k] for k, c in enumerate(top)}
        legend = [(c, pick[c]) for c in top] + ([("other", OTHER)] if len(top) < len(
            {r.get("category") for r in rows}) else [])
        return [pick.get(r.get("category") or "", OTHER) for r in rows], legend
    if colour == "popularity":
        hi = math.log1p(max([r["popularity"] for r in rows] or [0])) or 1.0
        return ([_ramp(math.log1p(r["popularity"]) / hi) for r in rows],
                [("few interactions", _ramp(0)), ("many", _ramp(1))])
    flag = colour
    return ([PALETTE[5] if r[flag] else OTHER for r in rows], [(flag, PALETTE[5]), (f"not {flag}", OTHER)])


def scatter_png(rows: list[dict], path: Path, colour: str = "category", size: int = 1000) -> Path:
    from PIL import Image, ImageDraw
    cols, legend = colours_for(rows, colour)
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    left = 170 if legend else 16      # a column for the legend, so it never hides points
    box = (left, 16, size - 16, size - 16)
    if rows:
        xs, ys = [r["x"] for r in rows], [r["y"] for r in rows]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        w, h = box[2] - box[0], box[3] - box[1]
        scale = min(w / ((x1 - x0) or 1.0), h / ((y1 - y0) or 1.0))
        ox = box[0] + (w - (x1 - x0) * scale) / 2
        oy = box[3] - (h - (y1 - y0) * scale) / 2
        rad = max(1, min(5, int(400 / math.sqrt(len(rows) + 1))))
        # the flagged/coloured points last, so grey ones never hide them
        order = sorted(range(len(rows)), key=lambda k: cols[k] != OTHER)
        for k in order:
            px = ox + (xs[k] - x0) * scale
            py = oy - (ys[k] - y0) * scale   # y up, as in a plot
            d.ellipse((px - rad, py - rad, px + rad, py + rad), fill=cols[k])
    for n, (label, rgb) in enumerate(legend):
        y = 8 + 14 * n
        d.rectangle((8, y + 2, 18, y + 12), fill=rgb)
        d.text((24, y), str(label)[:40], fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path
