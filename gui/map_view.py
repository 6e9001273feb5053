"""The item map's ViewBox: while `lasso` is on, a left-drag draws a free-hand outline
(dashed) instead of panning, and its points are emitted when the drag ends."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal


class LassoViewBox(pg.ViewBox):
    """A ViewBox whose left-drag draws a lasso instead of panning while `lasso` is on."""
    lassoDone = Signal(object)           # [(x, y), ...] in data coordinates

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lasso = False
        self._trace: list[tuple[float, float]] = []
        self.curve = pg.PlotCurveItem(pen=pg.mkPen("#111827", width=1.5, style=Qt.DashLine))
        self.curve.setZValue(50)
        self.addItem(self.curve, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None):
        if not self.lasso or ev.button() != Qt.MouseButton.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            self._trace = []
        self._trace.append((p.x(), p.y()))
        xs, ys = zip(*(self._trace + self._trace[:1]))
        self.curve.setData(np.array(xs), np.array(ys))
        if ev.isFinish():
            self.curve.setData([], [])
            trace, self._trace = self._trace, []
            self.lassoDone.emit(trace)
