"""Every point of the item map as one pyqtgraph item, drawn from numpy arrays.

pyqtgraph's ScatterPlotItem keeps a record per point (pen, brush, symbol, a SpotItem made on
the first click) and builds its symbol keys in Python: 0.6 s to hand it 100k points, and a
click creates 100k SpotItems. Here a redraw is numpy only: the points in view mapped to
pixels, each given its colour's disc from a small atlas (one antialiased disc per colour,
drawn once per size and pixel ratio), and one drawPixmapFragments call.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import internals
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap

ALPHA = 220                # points are a little see-through, so dense clusters read as dense
DEDUP_MIN = 20_000         # above this many points in view, draw one point per pixel


class _Scratch:
    """Arrays reused from paint to paint, by every MapPoints (all paint on the GUI thread, one
    at a time): fresh large arrays cost page faults each time."""

    def __init__(self):
        self.owner = np.zeros(0, dtype=np.int32)
        self.index = np.zeros(0, dtype=np.int32)
        self.frags = internals.PrimitiveArray(QPainter.PixmapFragment, 10)

    def topmost(self, sx: np.ndarray, sy: np.ndarray, cell: float = 1.0) -> np.ndarray:
        """Indices of the last point (the one drawn on top) in each cell of `cell` device
        pixels: with cell 1 the points under it are hidden, and a zoomed-out 100k map has far
        fewer pixels than points."""
        n = len(sx)
        ix = np.rint(sx / cell).astype(np.int64)
        iy = np.rint(sy / cell).astype(np.int64)
        ix -= ix.min()
        iy -= iy.min()
        key = iy * (int(ix.max()) + 1) + ix
        size = int(key.max()) + 1
        if len(self.owner) < size:          # with room: a pan's next frame is a little larger
            self.owner = np.zeros(size + size // 2, dtype=np.int32)
        if len(self.index) < n:
            self.index = np.arange(n + n // 2, dtype=np.int32)
        owner, index = self.owner[:size], self.index[:n]
        owner.fill(-1)
        np.maximum.at(owner, key, index)          # the highest index: drawn last, on top
        return np.flatnonzero(owner[key] == index)


_SCRATCH = _Scratch()


class MapPoints(pg.GraphicsObject):
    """Points in groups, one colour a group; later groups are drawn on top. Filled discs, or
    with `outline` (a pen width in pixels) the outlines of discs or squares (symbol "s"):
    the selection marks, which a lasso can make 50k of (11 px squares 3 px apart read as
    one patch, so those keep one mark per 3 px cell)."""

    def __init__(self, symbol: str = "o", outline: float = 0.0, alpha: int = ALPHA, cell: float = 1.0):
        super().__init__()
        self.symbol, self.outline, self.alpha = symbol, float(outline), int(alpha)
        self.cell = cell        # above DEDUP_MIN in view: one symbol per cell of this many pixels
        self.xy = np.zeros((0, 2))               # drawn positions, in draw order
        self.rows = np.zeros(0, dtype=np.int64)  # the map row of each drawn point
        self.code = np.zeros(0, dtype=np.intp)   # its group
        self.groups: list[tuple[tuple, np.ndarray]] = []   # (rgb, rows) per group
        self.size = 5.0
        self._colours: list[QColor] = []
        self._atlas: tuple | None = None         # (scale, pixmap, source rects [groups, 4])
        self._lo = np.zeros(2)
        self._hi = np.zeros(2)

    def set_groups(self, xy: np.ndarray, groups, size: float) -> None:
        """groups: [(rgb, row indices into xy)], in draw order."""
        self.groups = [(tuple(rgb), np.asarray(rows, dtype=np.int64)) for rgb, rows in groups]
        rows = [r for _, r in self.groups]
        self.rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        self.code = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        self.xy = np.ascontiguousarray(np.asarray(xy, dtype=np.float64)[self.rows])
        self._colours = [QColor(*rgb, self.alpha) for rgb, _ in self.groups]
        self.size = float(size)
        self._atlas = None
        if len(self.xy):
            self._lo, self._hi = self.xy.min(0), self.xy.max(0)
        self.prepareGeometryChange()
        self.informViewBoundsChanged()
        self.update()

    def clear(self) -> None:
        self.set_groups(np.zeros((0, 2)), [], self.size)

    def __len__(self) -> int:
        return len(self.rows)

    # ---- what pyqtgraph's ViewBox asks of a plotted item --------------------------------
    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        if not len(self.xy):
            return (None, None)
        if orthoRange is None and frac >= 1.0:
            return (float(self._lo[ax]), float(self._hi[ax]))
        d = self.xy[:, ax]
        if orthoRange is not None:
            o = self.xy[:, 1 - ax]
            d = d[(o >= orthoRange[0]) & (o <= orthoRange[1])]
            if not len(d):
                return (None, None)
        if frac >= 1.0:
            return (float(d.min()), float(d.max()))
        return tuple(np.percentile(d, [50 * (1 - frac), 50 * (1 + frac)]))

    def pixelPadding(self) -> float:
        return (self.size + self.outline) / 2 + 1

    def boundingRect(self) -> QRectF:
        if not len(self.xy):
            return QRectF()
        px, py = self.pixelVectors()
        pad = self.pixelPadding()
        dx = pad * (px.length() if px is not None else 0.0)
        dy = pad * (py.length() if py is not None else 0.0)
        (x0, y0), (x1, y1) = self._lo, self._hi
        return QRectF(x0 - dx, y0 - dy, x1 - x0 + 2 * dx, y1 - y0 + 2 * dy)

    def viewTransformChanged(self) -> None:
        self.prepareGeometryChange()        # the padding is in pixels
        super().viewTransformChanged()      # and viewRect() is cached until now

    # ---- drawing ------------------------------------------------------------------------
    def _atlas_at(self, scale: float):
        """One symbol per group, `scale` device pixels per logical pixel, side by side."""
        if self._atlas is not None and self._atlas[0] == scale:
            return self._atlas
        d, w = self.size * scale, self.outline * scale
        cell = int(math.ceil(d + w)) + 2
        img = QImage(max(1, cell * len(self._colours)), cell, QImage.Format_ARGB32_Premultiplied)
        img.fill(Qt.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.Antialiasing)
        for k, colour in enumerate(self._colours):
            if w > 0:
                p.setPen(QPen(colour, w))
                p.setBrush(Qt.NoBrush)
            else:
                p.setPen(Qt.NoPen)
                p.setBrush(colour)
            box = QRectF(k * cell + (cell - d) / 2, (cell - d) / 2, d, d)
            p.drawRect(box) if self.symbol == "s" else p.drawEllipse(box)
        p.end()
        src = np.array([[k * cell, 0, cell, cell] for k in range(len(self._colours))], dtype=np.float64)
        self._atlas = (scale, QPixmap.fromImage(img), src.reshape(-1, 4))
        return self._atlas

    def paint(self, p, *args) -> None:
        if not len(self.xy):
            return
        export = self._exportOpts if self._exportOpts is not False else {}
        dpr = p.device().devicePixelRatioF() or 1.0
        _, pixmap, src = self._atlas_at(dpr * export.get("resolutionScale", 1.0))
        vr = self.viewRect()
        keep = None
        if vr is not None:          # only the points in view (and a point's width around it)
            px, py = self.pixelVectors()
            pad = self.pixelPadding()
            dx = pad * (px.length() if px is not None else 0.0)
            dy = pad * (py.length() if py is not None else 0.0)
            x, y = self.xy[:, 0], self.xy[:, 1]
            inside = ((x >= vr.left() - dx) & (x <= vr.right() + dx)
                      & (y >= vr.top() - dy) & (y <= vr.bottom() + dy))
            if not inside.all():
                keep = np.flatnonzero(inside)
        xy = self.xy if keep is None else self.xy[keep]
        code = self.code if keep is None else self.code[keep]
        if not len(xy):
            return
        t = p.transform()           # affine: the view's scale and offset
        sx = t.m11() * xy[:, 0] + t.m21() * xy[:, 1] + t.dx()
        sy = t.m12() * xy[:, 0] + t.m22() * xy[:, 1] + t.dy()
        if len(sx) > DEDUP_MIN and not export:
            top = _SCRATCH.topmost(sx, sy, self.cell)
            sx, sy, code = sx[top], sy[top], code[top]
        frags = _SCRATCH.frags
        frags.resize(len(sx))
        f = frags.ndarray()
        f[:, 0] = sx
        f[:, 1] = sy
        f[:, 2:6] = src[code]
        f[:, 6:10] = (1 / dpr, 1 / dpr, 0.0, 1.0)
        p.resetTransform()
        p.drawPixmapFragments(*frags.drawargs(), pixmap)
