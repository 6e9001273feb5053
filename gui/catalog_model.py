"""The catalog grid's Qt model: rows are items.rowid in a numpy array, fields read in pages.

Row r shows the item whose rowid is `rows[r]`; `data()` reads the page of PAGE rows
around it from SQLite on first use and keeps the last PAGES_KEPT pages, so painting a
screen reads a page or two and no Python object per item is ever made.
"""
from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from gui import catalog_data as cd
from gui.catalog_data import CatalogData
from gui.thumbnails import ThumbnailCache

MIME_ITEMS = "application/x-msm4sr-items"
PAGES_KEPT = 64                 # pages of rows cached (16k rows), a few screens either way
IdRole = int(Qt.UserRole) + 1
_DISPLAY, _DECORATION, _TOOLTIP, _BACKGROUND = (
    int(r) for r in (Qt.DisplayRole, Qt.DecorationRole, Qt.ToolTipRole, Qt.BackgroundRole))
_FLAGS = Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsDragEnabled
_NO_FLAGS = Qt.NoItemFlags
_EMPTY = np.empty(0, dtype=np.int64)



def encode_ids(ids: list[str]) -> bytes:
    return json.dumps(list(ids)).encode("utf-8")


def decode_ids(data: bytes) -> list[str]:
    """The item ids of an application/x-msm4sr-items payload; [] for anything malformed."""
    try:
        ids = json.loads(bytes(data).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return []
    return [str(i) for i in ids if isinstance(i, (str, int))] if isinstance(ids, list) else []


class CatalogModel(QAbstractListModel):
    """Row r shows the item whose rowid is `self.rows[r]`; its fields come from `_page`."""

    def __init__(self, thumbs: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.thumbs = thumbs
        self.data_ = CatalogData()
        self.rows: np.ndarray = _EMPTY
        self.db: sqlite3.Connection | None = None    # the GUI thread's read connection
        self.root = ""
        self.search, self.category, self.sort = "", "", "title"   # what the panel asked for
        self.page_reads = 0                          # pages read from SQLite (tests count them)
        self._pages: OrderedDict[int, list[tuple]] = OrderedDict()
        self._pos: np.ndarray | None = None          # rowid -> view row, built on demand
        self._new_brush = QBrush(QColor("#fff4cc"))

    # ---- contents --------------------------------------------------------
    def set_catalog(self, data: CatalogData, db, root: str, rows: np.ndarray) -> None:
        self.data_, self.db, self.root = data, db, str(root)
        self.set_rows(rows)

    def clear(self) -> None:
        self.set_catalog(CatalogData(), None, "", _EMPTY)

    def set_rows(self, rows: np.ndarray) -> None:
        self.beginResetModel()
        self.rows = rows
        self._pages.clear()
        self._pos = None
        self.endResetModel()

    def _row(self, row: int) -> tuple:
        page = row // cd.PAGE
        got = self._pages.get(page)
        if got is None:
            rowids = self.rows[page * cd.PAGE:(page + 1) * cd.PAGE].tolist()
            try:
                got = cd.read_page(self.db, self.root, rowids) if self.db is not None else []
            except sqlite3.Error:          # the workspace was closed under us: blank until reload
                got = []
            got += [("", "", "", "", False)] * (len(rowids) - len(got))
            self.page_reads += 1
            self._pages[page] = got
            while len(self._pages) > PAGES_KEPT:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page)
        return got[row - page * cd.PAGE]

    # ---- lookups ---------------------------------------------------------
    def item_id(self, row: int) -> str:
        return self._row(row)[0]

    def _rowid(self, item_id: str) -> int | None:
        if self.db is None:
            return None
        r = self.db.execute("SELECT rowid FROM items WHERE id=?", (item_id,)).fetchone()
        return r[0] if r else None

    def row_of(self, item_id: str) -> int:
        """The view row showing this item, or -1 when it is filtered out or unknown."""
        rid = self._rowid(item_id)
        if rid is None or rid > self.data_.max_rowid:
            return -1
        if self._pos is None:
            self._pos = np.full(self.data_.max_rowid + 1, -1, dtype=np.int64)
            self._pos[self.rows] = np.arange(len(self.rows))
        return int(self._pos[rid])

    def _field(self, item_id: str, column: str) -> str:
        if self.db is None:
            return ""
        r = self.db.execute(f"SELECT {column} FROM items WHERE id=?", (item_id,)).fetchone()
        return (r[0] or "") if r else ""

    def title(self, item_id: str) -> str:
        return self._field(item_id, "title") or item_id

    def image(self, item_id: str) -> str:
        """The absolute image path, or ''."""
        rid = self._rowid(item_id)
        return cd.read_page(self.db, self.root, [rid])[0][3] if rid is not None else ""

    def popularity(self, row: int) -> int | None:
        """Interactions of the item in this row; None until the popularity is loaded."""
        pop = self.data_.popularity
        return None if pop is None else int(pop[self.rows[row]])

    def total(self) -> int:
        return self.data_.total

    # ---- Qt model --------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index, role=Qt.DisplayRole):
        # roles compared as ints: comparing PySide enums costs microseconds per call
        row = index.row()
        if row < 0 or row >= len(self.rows):
            return None
        role = int(role)
        if role not in (_DISPLAY, _DECORATION, IdRole, _TOOLTIP, _BACKGROUND):
            return None
        iid, title, cats, image, is_new = self._row(row)
        if role == _DISPLAY:
            return ("★ " if is_new else "") + title
        if role == _DECORATION:
            return self.thumbs.get(image)
        if role == IdRole:
            return iid
        if role == _TOOLTIP:
            pop = self.popularity(row)
            n = f"{pop:,} interactions · " if pop is not None else ""
            extra = "\nnew item (not in the training data)" if is_new else ""
            return f"{title}\n{cats.replace('|', ', ')}\n{n}id {iid}{extra}"
        if role == _BACKGROUND and is_new:
            return self._new_brush
        return None

    def flags(self, index):
        return _FLAGS if index.isValid() else _NO_FLAGS

    def mimeTypes(self):
        return [MIME_ITEMS]

    def mimeData(self, indexes):
        rows = sorted(i.row() for i in indexes if i.isValid())
        ids = [self.item_id(r) for r in rows]
        mime = QMimeData()
        mime.setData(MIME_ITEMS, encode_ids(ids))
        mime.setText("\n".join(self._row(r)[1] for r in rows))
        return mime

    def supportedDragActions(self):
        return Qt.CopyAction
