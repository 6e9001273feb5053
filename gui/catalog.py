"""Catalog browser: a virtualised thumbnail grid over the whole catalog, at a million items.

The grid holds a view as a numpy array of items.rowid (gui/catalog_data.py): the count and
one sort order are read on a worker, the category list and popularity after the first
paint. `data()` reads the rows on screen from SQLite a page at a time (an LRU of pages),
so no Python object per item is ever made. Search is the workspace's FTS5 index; search,
category and sort are applied in SQLite and numpy, on a worker for catalogs above
SYNC_ROWS (at once below it). Thumbnails are decoded only for the cells painted.
"""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QLabel, QLineEdit,
                               QListView, QVBoxLayout, QWidget)

from gui import catalog_data as cd
from gui import context_menus
from gui.catalog_data import NEW_TAG, SORTS, CatalogData  # noqa: F401  (re-exported)
from gui.catalog_model import (MIME_ITEMS, IdRole, CatalogModel, decode_ids,  # noqa: F401
                               encode_ids)
from gui.thumbnails import ThumbnailCache
from gui.workers import run_for

load_catalog = cd.load_catalog_at       # the worker's first read (tests count its calls)


class CatalogPanel(QWidget):
    """Search box, category filter, sort, and the grid. Selecting inspects; double-click appends;
    right-click offers add, similar, explain and copy (gui/context_menus.py)."""

    appendRequested = Signal(list)     # item ids to append to the sequence

    def __init__(self, session, parent=None, thumbs: ThumbnailCache | None = None):
        super().__init__(parent)
        self.session = session
        self.thumbs = thumbs or ThumbnailCache(parent=self)
        self.model = CatalogModel(self.thumbs, self)
        self._generation = 0
        self._filter_gen = 0
        self._busy = False
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
        self.category.currentIndexChanged.connect(lambda _: self._category_changed())
        self.sort.currentIndexChanged.connect(lambda _: self._sort_changed())
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.doubleClicked.connect(self._double_clicked)
        self.context_menu = None        # the last right-click menu (tests read it)
        context_menus.install(self.view, self.menu_at)
        self.thumbs.ready.connect(lambda _p: self.view.viewport().update())
        session.workspaceChanged.connect(self._workspace_changed)
        session.itemsChanged.connect(self.reload)
        session.selectionChanged.connect(self._show_selected)
        self._set_categories([])
        if session.ws_path is not None:
            self.reload()

    # ---- loading ---------------------------------------------------------
    def _workspace_changed(self) -> None:
        self.model.clear()          # the old connection is closed: never read it again
        self.thumbs.clear()
        self.reload()

    def reload(self) -> None:
        if self.session.ws_path is None:
            return
        self._generation += 1
        gen = self._generation
        self.loaded = False
        self.count.setText("loading…")
        run_for(self, load_catalog, self.session.ws_path, self.model.sort,
                on_done=lambda data: self._loaded(gen, data),
                on_error=lambda exc, tb: self._failed(gen, exc))

    def _loaded(self, gen: int, data: CatalogData) -> None:
        if gen != self._generation:
            return      # a newer load is running (workspace switched meanwhile)
        same = self.model.total() > 0
        scroll = self.view.verticalScrollBar().value() if same else 0
        old = self.model.data_
        if old.category_counts is not None:      # keep the filter's entries until the new ones come
            data.category_counts = old.category_counts
        self.model.set_catalog(data, self.session.ws.db, self.session.ws_path,
                               data.orders[self.model.sort])
        if self.model.search.strip() or self.model.category:
            self._refilter()
        if scroll:      # a reload after adding an item keeps the user's place
            QTimer.singleShot(0, self, lambda: self.view.verticalScrollBar().setValue(scroll))
        self._update_count()
        run_for(self, cd.load_extras_at, self.session.ws_path, data.max_rowid,
                on_done=lambda extras: self._extras(gen, data, extras),
                on_error=lambda exc, tb: self._failed(gen, exc))

    def _extras(self, gen: int, data: CatalogData, extras) -> None:
        if gen != self._generation:
            return
        data.category_counts, data.popularity = extras
        self._set_categories(data.category_counts, data.has_new)
        self.loaded = True
        self._update_count()
        if self.session.selected:
            self._show_selected(self.session.selected)

    def _failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._generation:
            self._busy = False
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
            self._category_changed()

    # ---- filters ---------------------------------------------------------
    def apply_search(self) -> None:
        self._debounce.stop()
        text = self.search.text().strip()
        if text != self.model.search:
            self.model.search = text
            self._refilter()

    def set_category(self, category: str) -> None:
        k = self.category.findData(category)
        if k < 0:
            raise KeyError(f"no category {category!r}")
        self.category.setCurrentIndex(k)

    def set_sort(self, key: str) -> None:
        k = self.sort.findData(key)
        if k < 0:
            raise ValueError(f"unknown sort {key!r}")
        self.sort.setCurrentIndex(k)

    def _category_changed(self) -> None:
        self.model.category = self.category.currentData() or ""
        self._refilter()

    def _sort_changed(self) -> None:
        self.model.sort = self.sort.currentData()
        self._refilter()

    @property
    def busy(self) -> bool:
        """A search, filter or sort is being computed on a worker."""
        return self._busy

    def _refilter(self) -> None:
        """Apply search, category and sort: at once on a small catalog, else on a worker
        (the latest request wins; the grid keeps the previous view meanwhile)."""
        m, d = self.model, self.model.data_
        if self.session.ws is None or m.db is None:
            return
        self._filter_gen += 1
        gen = self._filter_gen
        spec = (m.sort, m.search, m.category)
        order = d.orders.get(m.sort)
        if d.total <= cd.SYNC_ROWS:
            if order is None:
                order = d.orders[m.sort] = cd.sort_order(m.db, d, m.sort)
            self._filtered(gen, d, spec, (order, cd.filter_rows(m.db, order, d.max_rowid,
                                                                 m.search, m.category)))
            return
        self._busy = True
        self.count.setText("searching…" if m.search else "sorting…")
        run_for(self, cd.view_at, self.session.ws_path, d, order, *spec,
                on_done=lambda res: self._filtered(gen, d, spec, res),
                on_error=lambda exc, tb: self._failed(self._generation, exc)
                if gen == self._filter_gen else None)

    def _filtered(self, gen: int, d: CatalogData, spec, res) -> None:
        if gen != self._filter_gen or d is not self.model.data_:
            return      # a newer request, or another catalog, came meanwhile
        order, rows = res
        d.orders[spec[0]] = order
        self._busy = False
        self.model.set_rows(rows)
        self._update_count()
        sel = self.session.selected
        if sel and self.model.row_of(sel) >= 0:
            self._show_selected(sel)

    def _update_count(self) -> None:
        if self._busy:
            return
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

    def menu_for(self, ids: list[str], focus: str | None = None):
        """The right-click menu for these items (focus: the one under the cursor)."""
        return context_menus.catalog_menu(self, list(ids), focus if focus is not None else
                                          (ids[0] if ids else None))

    def menu_at(self, pos):
        rows, row = context_menus.rows_at(self.view, pos)
        if row is None:
            return None
        self.context_menu = self.menu_for([self.model.item_id(r) for r in rows], self.model.item_id(row))
        return self.context_menu

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
