"""Live top-k recommendations for the sequence being built.

Every edit of the sequence (or of k, the hide-seen box, the model) asks the model
again on a worker, debounced by 50 ms; only the newest answer is shown.
`last_latency_ms` is the time from the last edit to its results on screen.
"""
from __future__ import annotations

import json
from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QSpinBox, QVBoxLayout, QWidget)

from gui import context_menus
from gui.model_calls import LatestRequest, call_model
from gui.thumbnails import ThumbnailCache

MIME_ITEMS = "application/x-msm4sr-items"
THUMB = QSize(40, 60)
ID_ROLE = Qt.ItemDataRole.UserRole
PATH_ROLE = Qt.ItemDataRole.UserRole + 1


class _ResultList(QListWidget):
    """A list whose rows drag out as item ids, so the sequence builder can take them."""

    def mimeTypes(self):
        return [MIME_ITEMS]

    def mimeData(self, items):
        data = QMimeData()
        ids = [it.data(ID_ROLE) for it in items]
        data.setData(MIME_ITEMS, json.dumps(ids).encode())
        data.setText("\n".join(ids))
        return data


class RecommendationsPanel(QWidget):
    resultsShown = Signal(list)     # [(item_id, score), ...] now on screen

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.results: list[tuple[str, float]] = []
        self.last_latency_ms: float | None = None
        self.latencies_ms: list[float] = []
        self.thumbs = ThumbnailCache(THUMB, capacity=512, parent=self)
        self.thumbs.ready.connect(self._thumb_ready)

        self.k_spin = QSpinBox(minimum=1, maximum=100, value=10, prefix="top ")
        self.k_spin.setToolTip("How many recommendations to show")
        self.hide_seen = QCheckBox("Hide items in the sequence")
        self.hide_seen.setChecked(True)
        self.status = QLabel(wordWrap=True)
        self.status.setStyleSheet("color: palette(mid); padding: 6px;")
        self.list = _ResultList()
        self.list.setIconSize(THUMB)
        self.list.setDragEnabled(True)
        self.list.setDragDropMode(QListWidget.DragDropMode.DragOnly)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setUniformItemSizes(True)
        self.list.setToolTip("Click to inspect, double-click or drag onto the sequence to append; "
                             "right-click for more")

        top = QHBoxLayout()
        top.addWidget(self.k_spin)
        top.addWidget(self.hide_seen, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(self.list, 1)

        self._req = LatestRequest(self._build_request, delay_ms=50, parent=self)
        self._req.result.connect(self._show)
        self._req.failed.connect(self._failed)
        session.sequenceChanged.connect(self.refresh)
        session.modelChanged.connect(self.refresh)
        session.workspaceChanged.connect(self._workspace_changed)
        session.itemsChanged.connect(self.refresh)
        self.k_spin.valueChanged.connect(self.refresh)
        self.hide_seen.toggled.connect(self.refresh)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemDoubleClicked.connect(
            lambda row: context_menus.append_to_sequence(self, session, [row.data(ID_ROLE)]))
        # the export actions gui/export.py adds to self.list.actions() close this menu
        self.context_menu = None
        context_menus.install(self.list, self.menu_at)
        self.refresh()

    # ---- asking the model ----------------------------------------------
    @property
    def busy(self) -> bool:
        return self._req.busy

    def refresh(self, *_) -> None:
        self._req.request()

    def _build_request(self):
        rec, seq = self.session.recommender, list(self.session.sequence)
        if rec is None:
            self._clear("No model loaded. Load one with File ▸ Models… (Ctrl+M) "
                        "or train one in the Training panel.")
            return None
        if not seq:
            self._clear("The sequence is empty. Drag items from the catalog to start one.")
            return None
        exclude = tuple(seq) if self.hide_seen.isChecked() else ()
        return call_model, (rec, "recommend", seq), {"k": self.k_spin.value(), "exclude": exclude}

    def _clear(self, message: str) -> None:
        self.results = []
        self.list.clear()
        self.status.setText(message)
        self.status.show()

    def _failed(self, exc, tb) -> None:
        self._clear(f"Could not recommend: {exc}")
        self.session.error(f"Recommendation failed: {exc}")

    def _show(self, results, latency_ms: float) -> None:
        self.results = [(str(i), float(s)) for i, s in results]
        self.last_latency_ms = latency_ms
        self.latencies_ms.append(latency_ms)
        self.status.setText(f"{len(self.results)} recommendations · {latency_ms:.0f} ms")
        ws = self.session.ws
        self.list.clear()
        for rank, (item_id, score) in enumerate(self.results, 1):
            item = ws.item(item_id) if ws is not None else None
            title = (item.title if item and item.title else item_id)
            new = bool(item and item.is_new)
            row = QListWidgetItem(f"{rank}. {title}{'  ★ NEW' if new else ''}\nscore {score:.3f}")
            row.setData(ID_ROLE, item_id)
            row.setToolTip(f"{title}\nid {item_id}\nscore {score:.4f}" + ("\nnew item (cold start)" if new else ""))
            if new:
                row.setBackground(QBrush(QColor(255, 200, 0, 60)))
            path = self._image_path(item)
            row.setData(PATH_ROLE, path)
            row.setIcon(QIcon(self.thumbs.get(path)))
            self.list.addItem(row)
        self.resultsShown.emit(list(self.results))

    def _workspace_changed(self) -> None:
        self.thumbs.clear()
        self.refresh()

    def menu_for(self, ids: list[str], focus: str | None = None):
        """The right-click menu for these recommendations (focus: the one under the cursor)."""
        return context_menus.recommendation_menu(self, list(ids), focus if focus is not None else
                                                 (ids[0] if ids else None))

    def menu_at(self, pos):
        rows, row = context_menus.rows_at(self.list, pos)
        ids = [self.list.item(r).data(ID_ROLE) for r in rows]
        self.context_menu = self.menu_for(ids, None if row is None else self.list.item(row).data(ID_ROLE))
        return self.context_menu

    def _clicked(self, row: QListWidgetItem) -> None:
        self.session.select(row.data(ID_ROLE))

    # ---- thumbnails -----------------------------------------------------
    def _image_path(self, item) -> str | None:
        ws = self.session.ws
        p = ws.image_path(item) if (ws is not None and item is not None) else None
        return str(p) if p is not None else None

    def _thumb_ready(self, path: str) -> None:
        icon = QIcon(self.thumbs.get(path))
        for n in range(self.list.count()):
            row = self.list.item(n)
            if row.data(PATH_ROLE) == path:
                row.setIcon(icon)
