"""The item map dock: every item the loaded model can rank, placed by core.explore.map
(UMAP or PCA of the model's item vectors, cached per model on disk and here per model).

All points are one MapPoints item (gui/map_points.py): numpy arrays and a disc per colour,
never one Python object per point, so a redraw of 100k items is numpy and one Qt call
(and pointer hits are numpy too, never pyqtgraph's per-point spots). Hovering shows
the item in the inspector; a click selects one (Shift+click adds), the Lasso button lets a
drag draw a free-hand selection; "Add to sequence" appends the selection. The sequence is
drawn as a path and the current recommendations as rings. Zoomed in to a few dozen items,
their thumbnails appear beside the points. Nothing is computed while the panel is hidden (a
tab behind Attention at launch): the projection starts when it is first shown.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QGraphicsItem, QGraphicsPixmapItem, QHBoxLayout, QLabel,
                               QPushButton, QVBoxLayout, QWidget)

from gui.map_data import COLOUR_BY, MapData, buckets, compute_map, in_polygon, nearest
from gui.map_points import MapPoints
from gui.map_view import LassoViewBox
from gui.thumbnails import ThumbnailCache
from gui.workers import run_for

HOVER_PX = 6            # how near (pixels) the pointer must be to a point
THUMBS_MAX = 40         # thumbnails appear when at most this many items are in view
THUMB = QSize(36, 54)
CACHE_MODELS = 4        # maps kept in memory (one per model, newest used)
SELECTED = (37, 99, 235)  # the selection's outline squares


class ItemMapPanel(QWidget):
    mapShown = Signal()                  # a map (or a new colouring) is on screen
    selectionChanged = Signal(object)    # [item ids] selected on the map (object: no copy into Qt)

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.data: MapData | None = None
        self.points = MapPoints()
        self.legend: list[tuple[str, tuple, int]] = []
        self.selected: list[str] = []
        self._selected_rows = np.zeros(0, dtype=np.int64)   # their map rows
        self.top: list[str] = []
        self.hovered: str | None = None
        self.computing = False
        self._pending: bool | None = None   # a refresh put off while hidden (its force flag)
        self._cache: dict[tuple, MapData] = {}
        self._token = 0
        self._thumb_items: list[QGraphicsPixmapItem] = []
        self.thumbs = ThumbnailCache(THUMB, capacity=256, parent=self)
        self.thumbs.ready.connect(lambda _p: self._thumb_timer.start())

        self.colour = QComboBox()
        self.colour.addItems(list(COLOUR_BY))
        self.colour.setToolTip("Colour the points by")
        self.method = QComboBox()
        self.method.addItems(["auto", "umap", "pca"])
        self.method.setToolTip("auto: UMAP up to 20,000 items (slow the first time, then cached), PCA above")
        self.lasso_button = QPushButton("Lasso")
        self.lasso_button.setCheckable(True)
        self.lasso_button.setToolTip("On: drag to draw around the items to select (off: drag pans)")
        self.add_button = QPushButton("Add to sequence")
        self.add_button.setEnabled(False)
        self.add_button.setToolTip("Append the selected items to the sequence")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Clear the selection")
        self.clear_button.setEnabled(False)
        self.status = QLabel(wordWrap=True)
        self.status.setStyleSheet("color: #4b5563; padding: 2px 6px;")
        self.key = QLabel(wordWrap=True)
        self.key.setTextFormat(Qt.RichText)

        self.view = LassoViewBox()
        self.plot = pg.PlotWidget(viewBox=self.view)
        self.plot.setBackground("w")
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setAspectLocked(True)
        self.path = pg.PlotDataItem(pen=pg.mkPen("#111827", width=1.5), symbol="o", symbolSize=7,
                                    symbolBrush="#111827", symbolPen=None)
        self.path.setZValue(20)
        self.rings = pg.ScatterPlotItem(pxMode=True, size=13, brush=None,
                                        pen=pg.mkPen("#dc2626", width=2))
        self.rings.setZValue(21)
        self.marks = MapPoints(symbol="s", outline=2.5, alpha=255, cell=3)   # a lasso can select 50k
        self.marks.setZValue(22)
        for it in (self.points, self.path, self.rings, self.marks):
            self.plot.addItem(it)

        # two short rows, so the dock fits under the catalog of a 1024 px window
        top, acts = QHBoxLayout(), QHBoxLayout()
        top.addWidget(QLabel("Colour"))
        top.addWidget(self.colour)
        top.addWidget(QLabel("Projection"))
        top.addWidget(self.method)
        top.addStretch(1)
        for b in (self.lasso_button, self.add_button, self.clear_button):
            acts.addWidget(b)
        acts.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addLayout(acts)
        lay.addWidget(self.status)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.key)

        self._hover_timer = QTimer(self, singleShot=True, interval=40)   # one inspector update per pause
        self._hover_timer.timeout.connect(self._hover_select)
        self._hover_at: QPointF | None = None
        self._thumb_timer = QTimer(self, singleShot=True, interval=120)
        self._thumb_timer.timeout.connect(self._update_thumbs)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        self.view.sigRangeChanged.connect(lambda *_: self._thumb_timer.start())
        self.view.lassoDone.connect(self.select_polygon)
        self.lasso_button.toggled.connect(self._lasso_toggled)
        self.colour.currentTextChanged.connect(lambda _t: self.draw())
        self.method.currentTextChanged.connect(lambda _t: self.refresh())
        self.add_button.clicked.connect(self.add_selection)
        self.clear_button.clicked.connect(lambda: self.set_selection([]))
        session.modelChanged.connect(self.refresh)
        session.itemsChanged.connect(lambda: self.refresh(force=True))
        session.workspaceChanged.connect(self._workspace_changed)
        session.sequenceChanged.connect(lambda _ids: self._draw_path())
        self.refresh()

    # ---- the projection (on a worker) -------------------------------------------
    def _key(self, rec) -> tuple:
        return (str(self.session.ws_path), rec.manifest.get("weights_sha256"),
                tuple(getattr(rec, "new_ids", ()) or ()), self.method.currentText())

    def refresh(self, *_, force: bool = False) -> None:
        rec = self.session.recommender
        self._token += 1
        if rec is None or self.session.ws_path is None:
            self.show_data(None, "No model loaded: the map places the items a model has learned.")
            return
        key = self._key(rec)
        if key in self._cache and not force:
            self.show_data(self._cache[key])
            return
        if not self.on_screen():            # e.g. the dock is a tab behind Attention
            self._pending = force
            self.show_data(None, "The map is computed when this panel is shown.")
            return
        self._pending = None
        token = self._token
        self.computing = True
        self.status.setText("computing the item map… (UMAP can take a while the first time; "
                            "it is cached per model)")
        run_for(self, compute_map, rec, self.session.ws_path, self.method.currentText(),
                on_done=lambda d: self._computed(token, key, d),
                on_error=lambda exc, tb: self._failed(token, exc))

    def on_screen(self) -> bool:
        """Shown to the user: visible, and not a dock tab behind another (Qt keeps those
        visible, moved off screen)."""
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.shown_again()

    def shown_again(self, *_) -> None:
        """Shown, or its dock's tab picked (QDockWidget.visibilityChanged): the refresh that
        waited for it, if any."""
        if self._pending is not None:
            QTimer.singleShot(0, self, self._run_pending)

    def _run_pending(self) -> None:
        if self._pending is not None and self.on_screen():
            force, self._pending = self._pending, None
            self.refresh(force=force)

    def _computed(self, token, key, data: MapData) -> None:
        if token != self._token:
            return
        self.computing = False
        self._cache[key] = data
        while len(self._cache) > CACHE_MODELS:
            self._cache.pop(next(iter(self._cache)))
        self.show_data(data)

    def _failed(self, token, exc) -> None:
        if token == self._token:
            self.computing = False
            self.show_data(None, f"Could not compute the item map: {exc}")
            self.session.error(f"Item map failed: {exc}")

    def _workspace_changed(self) -> None:
        self._cache.clear()
        self.thumbs.clear()
        self.top = []
        self.refresh()

    def show_data(self, data: MapData | None, message: str = "") -> None:
        self.data = data
        self.selected = [i for i in self.selected if data is not None and i in data.row]
        self._selected_rows = np.array([data.row[i] for i in self.selected], dtype=np.int64)
        if data is None:
            self.computing = False
            self._clear_layers()
            self.status.setText(message)
            self.key.setText("")
            self._draw_marks()
            return
        self.draw()
        self.view.autoRange(padding=0.04)

    # ---- drawing ----------------------------------------------------------------
    def _clear_layers(self) -> None:
        self.points.clear()
        self.legend = []
        self._clear_thumbs()

    def draw(self) -> None:
        """The points, a colour per bucket, then the path, rings and selection on top."""
        d = self.data
        self._clear_layers()
        if d is None:
            return
        n = len(d)
        size = 7 if n <= 2000 else 5 if n <= 20000 else 3
        groups = buckets(d, self.colour.currentText())
        self.points.set_groups(d.xy, [(rgb, rows) for _, rgb, rows in groups], size)
        self.legend = [(label, rgb, len(rows)) for label, rgb, rows in groups]
        self.key.setText("  ".join(
            f"<span style='color: rgb{rgb}; font-size: 14px'>●</span> {label} ({count:,})"
            for label, rgb, count in self.legend[::-1][:12]))
        self.status.setText(f"{n:,} items · {d.method.upper()} of the model's item vectors"
                            f"{' (cached)' if d.cached else ''} · hover to inspect, click to select")
        self._draw_path()
        self._draw_marks()
        self._thumb_timer.start()
        self.mapShown.emit()

    def points_drawn(self) -> int:
        return len(self.points)

    def _xy_of(self, ids) -> np.ndarray:
        d = self.data
        rows = [d.row[i] for i in ids if d is not None and i in d.row]
        return d.xy[rows] if rows else np.zeros((0, 2))

    def _draw_path(self) -> None:
        xy = self._xy_of(self.session.sequence)
        if not len(xy):
            self.path.setData([], [])
            return
        sizes = np.full(len(xy), 7.0)
        sizes[-1] = 13.0                     # the newest item: where the next step starts
        self.path.setData(xy[:, 0], xy[:, 1], symbolSize=sizes)

    def set_recommendations(self, results) -> None:
        """The recommendations now on screen ([(item, score)], best first): drawn as rings."""
        self.top = [str(i) for i, _ in results]
        self._draw_marks()

    def _draw_marks(self) -> None:
        top = self._xy_of(self.top)
        self.rings.setData(pos=top) if len(top) else self.rings.clear()
        if self.data is None or not self.selected:
            self.marks.clear()
        else:
            self.marks.set_groups(self.data.xy, [(SELECTED, self._selected_rows)], 11)

    # ---- pointer ----------------------------------------------------------------------
    def _radius(self) -> tuple[float, float]:
        px = self.view.viewPixelSize()
        return HOVER_PX * px[0], HOVER_PX * px[1]

    def item_at(self, x: float, y: float) -> str | None:
        """The item drawn nearest the data point (x, y), within a few pixels."""
        if self.data is None:
            return None
        k = nearest(self.data.xy, x, y, *self._radius())
        return None if k is None else self.data.ids[k]

    def _mouse_moved(self, scene_pos) -> None:
        if self.data is not None and self.view.sceneBoundingRect().contains(scene_pos):
            self._hover_at = self.view.mapSceneToView(scene_pos)
            self._hover_timer.start()

    def _hover_select(self) -> None:
        p = self._hover_at
        item = self.item_at(p.x(), p.y()) if p is not None else None
        if item is not None and item != self.hovered:
            self.hovered = item
            d = self.data
            self.plot.setToolTip(f"{d.titles[d.row[item]]}\nid {item}")
            self.session.select(item)

    def _clicked(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self.lasso_button.isChecked():
            return
        p = self.view.mapSceneToView(ev.scenePos())
        item = self.item_at(p.x(), p.y())
        if item is None:
            return
        self.session.select(item)
        if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            sel = [i for i in self.selected if i != item] + ([] if item in self.selected else [item])
            self.set_selection(sel)
        else:
            self.set_selection([item])

    def _lasso_toggled(self, on: bool) -> None:
        self.view.lasso = on
        self.view.setMouseEnabled(x=not on, y=not on)

    # ---- selection ----------------------------------------------------------------------
    def set_selection(self, ids: list[str], rows: np.ndarray | None = None) -> None:
        """Select ids (rows: their map rows, when the caller has them: a lasso's are known
        to be on the map and distinct)."""
        d = self.data
        if rows is None:
            ids = [i for i in dict.fromkeys(ids) if d is not None and i in d.row]
            rows = np.array([d.row[i] for i in ids], dtype=np.int64) if ids else np.zeros(0, np.int64)
        self.selected, self._selected_rows = list(ids), rows
        self.add_button.setEnabled(bool(self.selected))
        self.clear_button.setEnabled(bool(self.selected))
        self.add_button.setText(f"Add {len(self.selected)} to sequence" if len(self.selected) > 1
                                else "Add to sequence")
        self._draw_marks()
        self.selectionChanged.emit(list(self.selected))

    def select_polygon(self, poly) -> list[str]:
        """Select the items inside the polygon [(x, y), ...] in data coordinates (the lasso),
        most popular first, so an added selection starts with the well-known items."""
        d = self.data
        if d is None:
            return []
        rows = in_polygon(d.xy, poly)
        rows = rows[np.argsort(-d.popularity[rows], kind="stable")]
        self.set_selection([d.ids[k] for k in rows.tolist()], rows)
        return list(self.selected)

    def add_selection(self) -> None:
        """Append the selection (items not already there) to the sequence, as one undo step
        when the window's sequence panel is there."""
        add = [i for i in self.selected if i not in self.session.sequence]
        if not add:
            return
        append = getattr(self.window(), "sequence", None)
        if append is not None and hasattr(append, "append"):
            append.append(add)
        else:
            self.session.set_sequence(self.session.sequence + add)
        self.session.info(f"added {len(add)} item{'s' if len(add) > 1 else ''} from the map")

    # ---- thumbnails when zoomed in ---------------------------------------------------------
    def _clear_thumbs(self) -> None:
        for it in self._thumb_items:
            self.view.removeItem(it)
        self._thumb_items = []

    def visible_rows(self) -> np.ndarray:
        d = self.data
        if d is None:
            return np.zeros(0, dtype=np.int64)
        (x0, x1), (y0, y1) = self.view.viewRange()
        xy = d.xy
        return np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))

    def _update_thumbs(self) -> None:
        self._clear_thumbs()
        d = self.data
        rows = self.visible_rows()
        if d is None or not d.images or len(rows) > THUMBS_MAX:
            return
        for k in rows:
            path = d.image_path(d.ids[k])
            if path is None:
                continue
            it = QGraphicsPixmapItem(self.thumbs.get(path))
            it.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)   # pixel-sized
            it.setOffset(6, -THUMB.height() / 2)
            it.setPos(QPointF(float(d.xy[k, 0]), float(d.xy[k, 1])))
            it.setZValue(10)
            it.setToolTip(d.titles[k])
            self.view.addItem(it, ignoreBounds=True)
            self._thumb_items.append(it)

    @property
    def thumbnails_shown(self) -> int:
        return len(self._thumb_items)
