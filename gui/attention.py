"""Attention maps of the loaded model for the sequence being built.

One heatmap per (layer, head), or the mean over heads, in a grid. Rows are query
positions (top = oldest item), columns key positions; hovering shows
"query i (title) -> key j (title): weight".
"""
from __future__ import annotations

import os

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from gui.model_calls import LatestRequest, call_model

ALL, MEAN = -1, -2
_LABEL_CHARS = 30          # row labels; the hover readout has the whole title


def short(title: str, n: int = _LABEL_CHARS) -> str:
    return title if len(title) <= n else title[: n - 1] + "…"


def row_labels(titles: list[str], n: int = _LABEL_CHARS) -> list[str]:
    """Row labels that tell titles apart: where titles share a long start ("Star Wars:
    Episode "), that start is shortened and the part that differs is shown."""
    out = []
    for i, t in enumerate(titles):
        p = max((len(os.path.commonprefix([t, o])) for j, o in enumerate(titles) if j != i and o != t),
                default=0)
        if p > 12:
            start = t.rfind(" ", 0, p) + 1 or p          # the word where they part
            head = " ".join(t[:start].split()[:2])[:12]
            t = f"{head.rstrip(':- ')}…{t[start:]}"
        out.append(short(t, n))
    return out


class AttentionPanel(QWidget):
    mapsShown = Signal()

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.maps: list[np.ndarray] = []      # one [heads, L, L] per layer, cropped to the sequence
        self.ids: list[str] = []              # the item id at each position of the maps
        self.titles: list[str] = []
        self.last_latency_ms: float | None = None
        self.plots: list[tuple[pg.PlotItem, pg.ImageItem, np.ndarray, str]] = []

        self.layer_box = QComboBox()
        self.head_box = QComboBox()
        self.readout = QLabel(" ", wordWrap=True)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel(wordWrap=True)
        self.status.setStyleSheet("color: palette(mid); padding: 6px;")
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("w")
        self.view.scene().sigMouseMoved.connect(self._hover)
        self._cmap = pg.colormap.get("viridis")

        top = QHBoxLayout()
        top.addWidget(QLabel("Layer"))
        top.addWidget(self.layer_box)
        top.addWidget(QLabel("Head"))
        top.addWidget(self.head_box)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.readout)

        self._req = LatestRequest(self._build_request, delay_ms=50, parent=self)
        self._req.result.connect(self._got_maps)
        self._req.failed.connect(self._failed)
        self.layer_box.activated.connect(self._draw)
        self.head_box.activated.connect(self._draw)
        session.sequenceChanged.connect(self.refresh)
        session.modelChanged.connect(self.refresh)
        session.workspaceChanged.connect(self.refresh)
        self.refresh()

    @property
    def busy(self) -> bool:
        return self._req.busy

    def refresh(self, *_) -> None:
        self._req.request()

    def _build_request(self):
        rec, seq = self.session.recommender, list(self.session.sequence)
        if rec is None:
            self._clear("No model loaded.")
            return None
        if not seq:
            self._clear("The sequence is empty: attention needs at least one item.")
            return None
        return _attention, (rec, seq), {}

    def _clear(self, message: str) -> None:
        self.maps, self.ids, self.titles = [], [], []
        self.view.clear()
        self.plots = []
        self.status.setText(message)
        self.status.show()

    def _failed(self, exc, tb) -> None:
        self._clear(f"Could not compute attention: {exc}")
        self.session.error(f"Attention failed: {exc}")

    def _got_maps(self, value, latency_ms: float) -> None:
        maps, ids = value
        self.maps, self.ids = maps, ids
        self.last_latency_ms = latency_ms
        ws = self.session.ws
        self.titles = []
        for i in ids:
            item = ws.item(i) if ws is not None else None
            self.titles.append(item.title if item and item.title else i)
        self.status.hide()
        self._fill_boxes()
        self._draw()
        self.mapsShown.emit()

    def _fill_boxes(self) -> None:
        layers, heads = len(self.maps), (self.maps[0].shape[0] if self.maps else 0)
        for box, n, name, extra in ((self.layer_box, layers, "Layer", []),
                                    (self.head_box, heads, "Head", [("Mean of heads", MEAN)])):
            keep = box.currentData()
            box.blockSignals(True)
            box.clear()
            box.addItem("All", ALL)
            for text, data in extra:
                box.addItem(text, data)
            for k in range(n):
                box.addItem(f"{name} {k + 1}", k)
            idx = box.findData(keep if keep is not None else ALL)
            box.setCurrentIndex(max(idx, 0))
            box.blockSignals(False)

    # ---- drawing ---------------------------------------------------------
    def selected_maps(self) -> list[tuple[str, np.ndarray]]:
        """(caption, [L, L] matrix) for each map on screen, per the layer/head choice."""
        layer, head = self.layer_box.currentData(), self.head_box.currentData()
        out = []
        for li, m in enumerate(self.maps):
            if layer not in (ALL, None) and li != layer:
                continue
            if head == MEAN:
                out.append((f"layer {li + 1}, mean of heads", m.mean(axis=0)))
            else:
                for hi in range(m.shape[0]):
                    if head in (ALL, None) or hi == head:
                        out.append((f"layer {li + 1}, head {hi + 1}", m[hi]))
        return out

    def _draw(self, *_) -> None:
        self.view.clear()
        self.plots = []
        self.readout.setText("Hover over a cell to read its weight.")
        chosen = self.selected_maps()
        if not chosen:
            return
        n = chosen[0][1].shape[0]
        cols = max(1, min(len(chosen), self.maps[0].shape[0] if len(chosen) > 1 else 1))
        if len(chosen) <= 4 and self.view.width() >= 2 * self.view.height():
            cols = len(chosen)   # a wide, short dock: one row keeps each map readable
        # rows carry the titles; columns the same positions by number (titles would collide)
        y_ticks = [(k + 0.5, f"{k + 1}. {t}") for k, t in enumerate(row_labels(self.titles))]
        x_ticks = [(k + 0.5, str(k + 1)) for k in range(len(self.titles))]
        many = len(chosen) > 4       # small multiples: labels only on the outer plots
        top = max(max(float(m.max()) for _, m in chosen), 1e-6)   # one scale for all: comparable maps
        for idx, (caption, mat) in enumerate(chosen):
            r, c = divmod(idx, cols)
            plot = self.view.addPlot(row=r, col=c, title=caption)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
            # not aspect-locked: a locked square map in a wide or tall dock sat in the middle of
            # an empty axis, far from its labels; cells stretch to the dock's shape instead
            img = pg.ImageItem(mat.astype(np.float32), axisOrder="row-major")
            img.setColorMap(self._cmap)
            img.setLevels((0.0, top))
            plot.addItem(img)
            plot.invertY(True)
            plot.setRange(xRange=(0, n), yRange=(0, n), padding=0)
            show_x = not many or r == (len(chosen) - 1) // cols
            show_y = not many or c == 0
            bottom, left = plot.getAxis("bottom"), plot.getAxis("left")
            bottom.setTicks([x_ticks] if show_x else [[]])
            left.setTicks([y_ticks] if show_y else [[]])
            bottom.setLabel("key position" if show_x else None)
            left.setLabel("query" if show_y else None)
            if not show_x:
                bottom.setHeight(8)
            self.plots.append((plot, img, mat, caption))
        rows = (len(chosen) + cols - 1) // cols
        bar = pg.ColorBarItem(values=(0.0, top), colorMap=self._cmap, interactive=False, width=12)
        bar.getAxis("right").setTicks(None)
        self.view.addItem(bar, row=0, col=cols, rowspan=rows)
        self.colorbar = bar

    def _hover(self, pos) -> None:
        for plot, img, mat, caption in self.plots:
            if not plot.sceneBoundingRect().contains(pos):
                continue
            p = plot.vb.mapSceneToView(pos)
            j, i = int(np.floor(p.x())), int(np.floor(p.y()))
            n = mat.shape[0]
            if 0 <= i < n and 0 <= j < n:
                self.readout.setText(self.describe(i, j, mat, caption))
            return

    def describe(self, i: int, j: int, mat: np.ndarray, caption: str = "") -> str:
        # the whole titles: the row labels may be cut, the readout is where they are read
        text = (f"query {i + 1} ({short(self.titles[i], 80)}) → key {j + 1} "
                f"({short(self.titles[j], 80)}): {mat[i, j]:.3f}")
        return f"{caption}: {text}" if caption else text


def _attention(rec, seq: list[str]):
    """Worker: the maps, cropped to the positions that hold the sequence's items.

    A model keeps only its last max_len items, and may pad on the left; either way
    the last min(n, L) positions are the newest items of the sequence.
    """
    maps = call_model(rec, "attention", seq)
    out = []
    for m in maps:
        m = np.asarray(m, dtype=np.float32)
        if m.ndim == 2:
            m = m[None]
        out.append(m)
    if not out:
        return [], []
    L = min(out[0].shape[-1], len(seq))
    return [m[:, -L:, -L:] for m in out], seq[-L:]
