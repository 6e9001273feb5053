"""The inspector's "Similar" tab: the items nearest to the inspected one, by the model's
item vectors, by the text features or by shared keywords (core.explore.similar, run on a
worker). A click on a row appends that item to the sequence.

`inspector_tabs(inspector, similar)` puts the inspector and this panel in one tab widget,
the Inspector dock's widget."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from gui.model_calls import LatestRequest, model_lock

ID_ROLE = Qt.ItemDataRole.UserRole
BY = (("model", "model vectors"), ("text", "text"), ("keywords", "keywords"))


def nearest_items(rec, ws_path, item_id: str, k: int, by: str):
    """Worker: core.explore.similar on this thread's own workspace connection; the model's
    lock held for by="model" (its normalised table is kept on the Recommender)."""
    from core.explore.similar import similar
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws:
        if by == "model":
            with model_lock(rec):
                return item_id, by, similar(ws, rec, item_id, k=k, by=by)
        return item_id, by, similar(ws, None, item_id, k=k, by=by)


class SimilarPanel(QWidget):
    shown = Signal(list)                 # [Neighbour, ...] now listed

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.item_id: str | None = None
        self.neighbours: list = []
        self.by = QComboBox()
        for key, label in BY:
            self.by.addItem(label, key)
        self.by.setToolTip("model vectors: how alike the model ranks them; text: the descriptions' "
                           "Sentence-BERT vectors; keywords: shared image keywords and tags")
        self.k = QSpinBox(minimum=1, maximum=100, value=12, prefix="top ")
        self.heading = QLabel(wordWrap=True)
        self.status = QLabel(wordWrap=True)
        self.status.setStyleSheet("color: #6b7280;")
        self.list = QListWidget()
        self.list.setToolTip("Click to append the item to the sequence")
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.setSpacing(1)
        row = QHBoxLayout()
        row.addWidget(QLabel("By"))
        row.addWidget(self.by, 1)
        row.addWidget(self.k)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addLayout(row)
        lay.addWidget(self.heading)
        lay.addWidget(self.status)
        lay.addWidget(self.list, 1)

        self._req = LatestRequest(self._build, delay_ms=120, parent=self)
        self._req.result.connect(self._show)
        self._req.failed.connect(self._failed)
        self.by.currentIndexChanged.connect(self.refresh)
        self.k.valueChanged.connect(self.refresh)
        self.list.itemClicked.connect(self._clicked)
        session.selectionChanged.connect(self._selected)
        session.modelChanged.connect(self.refresh)
        session.workspaceChanged.connect(self._workspace_changed)
        session.itemsChanged.connect(self.refresh)
        self._set_message("Select an item to list the items nearest to it.")

    @property
    def busy(self) -> bool:
        return self._req.busy

    def _workspace_changed(self) -> None:
        self.item_id = None
        self.neighbours = []
        self.list.clear()
        self.heading.setText("")
        self._set_message("Select an item to list the items nearest to it.")

    def _selected(self, item_id: str) -> None:
        self.item_id = item_id
        self.refresh()

    def refresh(self, *_) -> None:
        if self.isVisible() or self.item_id is not None:
            self._req.request()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    def _build(self):
        """Only while the tab is on screen: hovering the map selects many items in a row."""
        ws, item = self.session.ws, self.item_id
        if ws is None or item is None or not self.isVisible():
            return None
        it = ws.item(item)
        self.heading.setText(f"Nearest to <b>{_esc(it.title if it else item)}</b>")
        by = self.by.currentData()
        rec = self.session.recommender
        if by == "model" and rec is None:
            self._show_empty("Load a model to find items the model ranks alike, or choose text or keywords.")
            return None
        self.status.setText("finding similar items…")
        return nearest_items, (rec, self.session.ws_path, item, self.k.value(), by), {}

    def _set_message(self, text: str) -> None:
        self.status.setText(text)

    def _show_empty(self, text: str) -> None:
        self.neighbours = []
        self.list.clear()
        self._set_message(text)

    def _failed(self, exc, tb) -> None:
        from core.errors import InputError
        self._show_empty(str(exc) if isinstance(exc, InputError) else f"Could not find similar items: {exc}")
        if not isinstance(exc, InputError):
            self.session.error(f"Similar items failed: {exc}")

    def _show(self, value, _latency) -> None:
        item_id, by, found = value
        if item_id != self.item_id or by != self.by.currentData():
            return
        self.neighbours = list(found)
        self.list.clear()
        score = "overlap" if by == "keywords" else "cosine"
        for n in found:
            shared = f"\nshares: {', '.join(n.shared[:6])}" if n.shared else ""
            row = QListWidgetItem(f"{n.title or n.item_id}\n{score} {n.score:.3f}{shared}")
            row.setData(ID_ROLE, n.item_id)
            row.setToolTip(f"{n.title}\nid {n.item_id}\nclick to append to the sequence")
            self.list.addItem(row)
        self._set_message(f"{len(found)} items by {self.by.currentText()} · click one to add it"
                          if found else "no similar items")
        self.shown.emit(list(found))

    def _clicked(self, row: QListWidgetItem) -> None:
        item = row.data(ID_ROLE)
        if item in self.session.sequence:
            self.session.info(f"{row.text().splitlines()[0]} is already in the sequence")
            return
        seq = getattr(self.window(), "sequence", None)
        if seq is not None and hasattr(seq, "append"):
            seq.append([item])          # one undo step in the sequence panel
        else:
            self.session.set_sequence(self.session.sequence + [item])


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inspector_tabs(inspector: QWidget, similar: SimilarPanel) -> QTabWidget:
    tabs = QTabWidget()
    tabs.setDocumentMode(True)
    tabs.addTab(inspector, "Item")
    tabs.addTab(similar, "Similar")
    tabs.setMinimumWidth(inspector.minimumWidth())
    return tabs
