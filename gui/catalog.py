"""Catalog browser: a virtualised thumbnail grid over the whole catalog.

The rows are loaded once per workspace on a worker (ids, titles, categories, a
search string, popularity and the sort orders, which SQLite computes). Filtering
and sorting then only rebuild a list of row numbers; the view asks `data()` for
visible rows only (uniform item sizes, batched layout), so 100,000 items stay smooth.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

from PySide6.QtCore import (QAbstractListModel, QItemSelectionModel, QMimeData, QModelIndex,
                            QSize, Qt, QTimer, Signal)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QLabel, QLineEdit,
                               QListView, QVBoxLayout, QWidget)

from gui.thumbnails import ThumbnailCache
from gui.workers import run_for

MIME_ITEMS = "application/x-msm4sr-items"
SEARCH_TEXT_CHARS = 1000        # search covers title, categories and this much of the text
SORTS = (("title", "Title"), ("popularity", "Most popular"), ("id", "Id"), ("newest", "Newest"))
NEW_TAG = "\x00new"             # the "new items" entry of the category filter
IdRole = int(Qt.UserRole) + 1
_DISPLAY, _DECORATION, _TOOLTIP, _BACKGROUND = (
    int(r) for r in (Qt.DisplayRole, Qt.DecorationRole, Qt.ToolTipRole, Qt.BackgroundRole))
_FLAGS = Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsDragEnabled
_NO_FLAGS = Qt.NoItemFlags


def encode_ids(ids: list[str]) -> bytes:
    return json.dumps(list(ids)).encode("utf-8")


def decode_ids(data: bytes) -> list[str]:
    """The item ids of an application/x-msm4sr-items payload; [] for anything malformed."""
    try:
        ids = json.loads(bytes(data).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return []
    return [str(i) for i in ids if isinstance(i, (str, int))] if isinstance(ids, list) else []


@dataclass
class CatalogData:
    """Everything the grid needs, one entry per item in id order."""
    ids: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)        # absolute path or ''
    is_new: list[bool] = field(default_factory=list)
    popularity: list[int] = field(default_factory=list)
    hay: list[str] = field(default_factory=list)           # lower-cased search text
    orders: dict[str, list[int]] = field(default_factory=dict)
    category_counts: list[tuple[str, int]] = field(default_factory=list)


def load_catalog(ws_path) -> CatalogData:
    """Runs on a worker with its own connection. SQLite sorts (and releases the GIL while it does)."""
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws:
        db = ws.db
        pop = dict(db.execute("SELECT item, COUNT(*) FROM interactions GROUP BY item"))
        rows = db.execute("SELECT id, title, categories, substr(text, 1, ?), image, is_new "
                          "FROM items ORDER BY id", (SEARCH_TEXT_CHARS,)).fetchall()
        d = CatalogData()
        if rows:
            ids, titles, cats, texts, images, is_new = (list(c) for c in zip(*rows))
            root = str(ws.path)
            d.ids = ids
            d.titles = [t or i for t, i in zip(titles, ids)]
            d.categories = [c or "" for c in cats]
            d.images = [("" if not im else im if os.path.isabs(im) else os.path.join(root, im))
                        for im in images]
            d.is_new = [bool(n) for n in is_new]
            d.popularity = [pop.get(i, 0) for i in ids]
            d.hay = [f"{t}\n{c}\n{x}".lower() for t, c, x in zip(titles, cats, texts)]
        cats_counter = Counter(c for c in "|".join(d.categories).split("|") if c)
        index = {iid: k for k, iid in enumerate(d.ids)}
        d.orders["id"] = list(range(len(d.ids)))
        d.orders["title"] = [index[r[0]] for r in db.execute(
            "SELECT id FROM items ORDER BY title COLLATE NOCASE, id")]
        d.orders["newest"] = [index[r[0]] for r in db.execute(
            "SELECT id FROM items ORDER BY is_new DESC, added DESC, rowid DESC")]
        d.orders["popularity"] = sorted(d.orders["id"], key=lambda k: -d.popularity[k])
        d.category_counts = cats_counter.most_common(1000)
        return d


class CatalogModel(QAbstractListModel):
    """Rows are `self.rows` (positions into `self.data_`), the filtered and sorted view."""

    def __init__(self, thumbs: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.thumbs = thumbs
        self.data_ = CatalogData()
        self.rows: list[int] = []
        self.search = ""
        self.category = ""
        self.sort = "title"
        self._pos: dict[int, int] | None = None    # data row -> view row, built on demand
        self._id_index: dict[str, int] = {}
        self._new_brush = QBrush(QColor("#fff4cc"))

    # ---- contents --------------------------------------------------------
    def set_catalog(self, data: CatalogData) -> None:
        self.data_ = data
        self._id_index = {iid: k for k, iid in enumerate(data.ids)}
        self._refilter()

    def set_search(self, text: str) -> None:
        text = text.strip().lower()
        if text != self.search:
            self.search = text
            self._refilter()

    def set_category(self, category: str) -> None:
        if category != self.category:
            self.category = category
            self._refilter()

    def set_sort(self, key: str) -> None:
        if key not in self.data_.orders and self.data_.ids:
            raise ValueError(f"unknown sort {key!r}")
        if key != self.sort:
            self.sort = key
            self._refilter()

    def _refilter(self) -> None:
        d = self.data_
        order = d.orders.get(self.sort, range(len(d.ids)))
        rows = order
        if self.category == NEW_TAG:
            rows = [k for k in rows if d.is_new[k]]
        elif self.category:
            tag = self.category
            cats = d.categories
            rows = [k for k in rows if tag in cats[k] and tag in cats[k].split("|")]
        if self.search:
            words = self.search.split()
            hay = d.hay
            for w in words:
                rows = [k for k in rows if w in hay[k]]
        self.beginResetModel()
        self.rows = list(rows)
        self._pos = None
        self.endResetModel()

    # ---- lookups ---------------------------------------------------------
    def item_id(self, row: int) -> str:
        return self.data_.ids[self.rows[row]]

    def row_of(self, item_id: str) -> int:
        """The view row showing this item, or -1 when it is filtered out or unknown."""
        k = self._id_index.get(item_id)
        if k is None:
            return -1
        if self._pos is None:
            self._pos = {r: i for i, r in enumerate(self.rows)}
        return self._pos.get(k, -1)

    def title(self, item_id: str) -> str:
        k = self._id_index.get(item_id)
        return self.data_.titles[k] if k is not None else item_id

    def image(self, item_id: str) -> str:
        k = self._id_index.get(item_id)
        return self.data_.images[k] if k is not None else ""

    def total(self) -> int:
        return len(self.data_.ids)

    # ---- Qt model --------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index, role=Qt.DisplayRole):
        # roles compared as ints: comparing PySide enums costs microseconds per call
        row = index.row()
        if row < 0 or row >= len(self.rows):
            return None
        k = self.rows[row]
        d = self.data_
        role = int(role)
        if role == _DISPLAY:
            return ("★ " if d.is_new[k] else "") + d.titles[k]
        if role == _DECORATION:
            return self.thumbs.get(d.images[k])
        if role == IdRole:
            return d.ids[k]
        if role == _TOOLTIP:
            cats = d.categories[k].replace("|", ", ")
            extra = "\nnew item (not in the training data)" if d.is_new[k] else ""
            return f"{d.titles[k]}\n{cats}\n{d.popularity[k]:,} interactions · id {d.ids[k]}{extra}"
        if role == _BACKGROUND and d.is_new[k]:
            return self._new_brush
        return None

    def flags(self, index):
        return _FLAGS if index.isValid() else _NO_FLAGS

    def mimeTypes(self):
        return [MIME_ITEMS]

    def mimeData(self, indexes):
        ids = [self.item_id(i.row()) for i in sorted(indexes, key=lambda i: i.row()) if i.isValid()]
        mime = QMimeData()
        mime.setData(MIME_ITEMS, encode_ids(ids))
        mime.setText("\n".join(self.title(i) for i in ids))
        return mime

    def supportedDragActions(self):
        return Qt.CopyAction


class CatalogPanel(QWidget):
    """Search box, category filter, sort, and the grid. Selecting inspects; double-click appends."""

    appendRequested = Signal(list)     # item ids to append to the sequence

    def __init__(self, session, parent=None, thumbs: ThumbnailCache | None = None):
        super().__init__(parent)
        self.session = session
        self.thumbs = thumbs or ThumbnailCache(parent=self)
        self.model = CatalogModel(self.thumbs, self)
        self._generation = 0
        self.loaded = False

        self.search = QLineEdit(placeholderText="Search titles, text and categories  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(120)
        self.category = QComboBox()
        self.category.setMinimumContentsLength(8)
        self.category.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.sort = QComboBox()
        for key, label in SORTS:
            self.sort.addItem(label, key)
        self.count = QLabel("")
        bar = QHBoxLayout()
        bar.addWidget(self.search, 3)
        bar.addWidget(self.category, 1)
        bar.addWidget(self.sort)
        bar.addWidget(self.count)

        self.view = QListView()
        self.view.setViewMode(QListView.IconMode)
        self.view.setMovement(QListView.Static)
        self.view.setResizeMode(QListView.Adjust)
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.Batched)   # lay out 100k items in slices, not one long pause
        self.view.setBatchSize(500)
        self.view.setIconSize(self.thumbs.size)
        self.view.setGridSize(QSize(self.thumbs.size.width() + 24, self.thumbs.size.height() + 46))
        self.view.setWordWrap(True)
        self.view.setTextElideMode(Qt.ElideRight)
        self.view.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.view.setDragEnabled(True)
        self.view.setDragDropMode(QAbstractItemView.DragOnly)
        self.view.setDefaultDropAction(Qt.CopyAction)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.view.verticalScrollBar().setSingleStep(24)
        self.view.setModel(self.model)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(bar)
        lay.addWidget(self.view)

        # typing filters after a short pause, not on every key
        self._debounce = QTimer(self, singleShot=True, interval=200)
        self._debounce.timeout.connect(self.apply_search)
        self.search.textChanged.connect(self._debounce.start)
        self.search.returnPressed.connect(self.apply_search)
        self.category.currentIndexChanged.connect(
            lambda _: self._apply(lambda: self.model.set_category(self.category.currentData() or "")))
        self.sort.currentIndexChanged.connect(
            lambda _: self._apply(lambda: self.model.set_sort(self.sort.currentData())))
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.doubleClicked.connect(self._double_clicked)
        self.thumbs.ready.connect(lambda _p: self.view.viewport().update())
        session.workspaceChanged.connect(self.reload)
        session.itemsChanged.connect(self.reload)
        session.selectionChanged.connect(self._show_selected)
        self._set_categories([])
        if session.ws_path is not None:
            self.reload()

    # ---- loading ---------------------------------------------------------
    def reload(self) -> None:
        if self.session.ws_path is None:
            return
        self._generation += 1
        gen = self._generation
        self.loaded = False
        self.count.setText("loading…")
        if self.model.total() == 0:
            self.thumbs.clear()
        run_for(self, load_catalog, self.session.ws_path,
                 on_done=lambda data: self._loaded(gen, data),
                 on_error=lambda exc, tb: self._failed(gen, exc))

    def _loaded(self, gen: int, data: CatalogData) -> None:
        if gen != self._generation:
            return      # a newer load is running (workspace switched meanwhile)
        same_catalog = bool(data.ids and self.model.total() and data.ids[0] == self.model.data_.ids[0])
        if data.ids and self.model.total() and not same_catalog:
            self.thumbs.clear()
        scroll = self.view.verticalScrollBar().value() if same_catalog else 0
        self.model.set_catalog(data)
        if scroll:      # a reload after adding an item keeps the user's place
            QTimer.singleShot(0, self, lambda: self.view.verticalScrollBar().setValue(scroll))
        self._set_categories(data.category_counts, any(data.is_new))
        self.loaded = True
        self._update_count()
        if self.session.selected:
            self._show_selected(self.session.selected)

    def _failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._generation:
            self.count.setText("not loaded")
            self.session.error(f"Could not load the catalog: {exc}")

    def _set_categories(self, counts, has_new: bool = False) -> None:
        current = self.category.currentData()
        self.category.blockSignals(True)
        self.category.clear()
        self.category.addItem("All categories", "")
        if has_new:
            self.category.addItem("★ New items", NEW_TAG)
        for cat, n in counts:
            self.category.addItem(f"{cat}  ({n:,})", cat)
        k = self.category.findData(current) if current else 0
        self.category.setCurrentIndex(max(k, 0))
        self.category.blockSignals(False)
        if current and k < 0:
            self.model.set_category("")

    # ---- filters ---------------------------------------------------------
    def apply_search(self) -> None:
        self._debounce.stop()
        self._apply(lambda: self.model.set_search(self.search.text()))

    def set_category(self, category: str) -> None:
        k = self.category.findData(category)
        if k < 0:
            raise KeyError(f"no category {category!r}")
        self.category.setCurrentIndex(k)

    def set_sort(self, key: str) -> None:
        self.sort.setCurrentIndex(self.sort.findData(key))

    def _apply(self, change) -> None:
        change()
        self._update_count()
        sel = self.session.selected
        if sel and self.model.row_of(sel) >= 0:
            self._show_selected(sel)

    def _update_count(self) -> None:
        shown, total = self.model.rowCount(), self.model.total()
        self.count.setText(f"{total:,} items" if shown == total else f"{shown:,} of {total:,} items")

    def visible_ids(self) -> list[str]:
        return [self.model.item_id(r) for r in range(self.model.rowCount())]

    # ---- selection -------------------------------------------------------
    def _current_changed(self, current, _previous) -> None:
        if current.isValid():
            self.session.select(self.model.item_id(current.row()))

    def _double_clicked(self, index) -> None:
        if index.isValid():
            self.appendRequested.emit([self.model.item_id(index.row())])

    def selected_ids(self) -> list[str]:
        rows = sorted(i.row() for i in self.view.selectionModel().selectedIndexes())
        return [self.model.item_id(r) for r in rows]

    def _show_selected(self, item_id: str) -> None:
        """Another view selected an item: show it here too, if it passes the filters."""
        row = self.model.row_of(item_id)
        if row < 0:
            return
        index = self.model.index(row)
        if self.view.currentIndex() != index:
            self.view.selectionModel().setCurrentIndex(index, QItemSelectionModel.ClearAndSelect)
            self.view.scrollTo(index)

    def focus_search(self) -> None:
        self.search.setFocus(Qt.ShortcutFocusReason)
        self.search.selectAll()
