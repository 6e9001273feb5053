"""Sequence builder: the ordered items a user has seen, edited by drag-and-drop.

Accepts catalog items (application/x-msm4sr-items), reordering by internal drag,
and image files from the desktop (text/uri-list), which become brand-new items.
Every edit is a QUndoCommand that calls session.set_sequence, so undo/redo and
all the other panels stay in step.
"""
from __future__ import annotations

import json
import os

from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QInputDialog, QLabel, QListView,
                               QToolButton, QVBoxLayout, QWidget)

from gui import context_menus
from gui.catalog import MIME_ITEMS, decode_ids, encode_ids
from gui.new_item import NewItemDialog, plain
from gui.sequence_items import NewItemActions
from gui.thumbnails import ThumbnailCache
from gui.workers import run_for

__all__ = ["MIME_ROWS", "NewItemDialog", "SequencePanel"]

MIME_ROWS = "application/x-msm4sr-sequence-rows"   # an internal move: {"owner": ..., "rows": [...]}
MIME_URIS = "text/uri-list"
MAX_DROPPED_FILES = 20


def save_named(ws_path, name: str, ids: list[str]) -> str:
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws:
        ws.save_sequence(name, ids)
    return name


# ---- undo ------------------------------------------------------------------------------
class SetSequence(QUndoCommand):
    """One edit: the whole sequence before and after (sequences are short)."""

    def __init__(self, session, text: str, before: list[str], after: list[str]):
        super().__init__(text)
        self.session, self.before, self.after = session, list(before), list(after)

    def redo(self) -> None:
        self.session.set_sequence(self.after)

    def undo(self) -> None:
        self.session.set_sequence(self.before)


# ---- model and view ---------------------------------------------------------------------
class SequenceModel(QAbstractListModel):
    def __init__(self, panel: "SequencePanel"):
        super().__init__(panel)
        self.panel = panel
        self.ids: list[str] = []

    def set_ids(self, ids: list[str]) -> None:
        self.beginResetModel()
        self.ids = list(ids)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.ids)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid() or index.row() >= len(self.ids):
            return None
        iid = self.ids[index.row()]
        if role == Qt.DisplayRole:
            info = self.panel.info(iid)
            return f"{index.row() + 1}. {'★ NEW  ' if info['is_new'] else ''}{info['title']}"
        if role == Qt.DecorationRole:
            return self.panel.thumbs.get(self.panel.info(iid)["image"])
        if role == Qt.ToolTipRole:
            info = self.panel.info(iid)
            return f"{info['title']}\nid {iid}" + ("\nnew item: not in the training data" if info["is_new"] else "")
        if role == Qt.UserRole:
            return iid
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemIsDropEnabled
        # items are not drop targets: drops land between rows
        return Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsDragEnabled

    def supportedDropActions(self):
        return Qt.CopyAction | Qt.MoveAction

    def supportedDragActions(self):
        return Qt.MoveAction | Qt.CopyAction

    def mimeTypes(self):
        return [MIME_ROWS, MIME_ITEMS, MIME_URIS]

    def mimeData(self, indexes):
        rows = sorted({i.row() for i in indexes if i.isValid()})
        mime = QMimeData()
        mime.setData(MIME_ROWS, json.dumps({"owner": id(self), "rows": rows}).encode())
        mime.setData(MIME_ITEMS, encode_ids([self.ids[r] for r in rows]))
        return mime

    def canDropMimeData(self, mime, action, row, column, parent):
        return any(mime.hasFormat(f) for f in (MIME_ROWS, MIME_ITEMS, MIME_URIS))

    def dropMimeData(self, mime, action, row, column, parent):
        if parent.isValid():          # dropped onto an item: insert before it
            row = parent.row()
        if row < 0 or row > len(self.ids):
            row = len(self.ids)
        return self.panel.handle_drop(mime, row)

    def removeRows(self, row, count, parent=QModelIndex()):
        # a finished move drag asks the source to remove what it moved; the drop already did
        return False


class SequenceView(QListView):
    deletePressed = Signal()

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.Delete) or event.key() in (Qt.Key_Delete, Qt.Key_Backspace):
            self.deletePressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def dropEvent(self, event) -> None:
        super().dropEvent(event)
        if event.isAccepted():
            # the model placed everything; never let the drag source delete rows afterwards
            event.setDropAction(Qt.CopyAction)


# ---- the panel --------------------------------------------------------------------------
class SequencePanel(NewItemActions, QWidget):
    dialogOpened = Signal(object)      # a NewItemDialog or a question was shown (tests answer it)
    itemCreated = Signal(str)          # a new item's id, once it is in the workspace and the sequence
    itemsDeleted = Signal(list)        # new items deleted from the workspace

    def __init__(self, session, parent=None, thumbs: ThumbnailCache | None = None):
        super().__init__(parent)
        self.session = session
        self.thumbs = thumbs or ThumbnailCache(QSize(30, 42), capacity=500, parent=self)
        self.undo_stack = QUndoStack(self)
        self._info: dict[str, dict] = {}
        self.dialog: NewItemDialog | None = None
        self._busy = 0                 # item creations / feature builds running

        self.model = SequenceModel(self)
        self.view = SequenceView()
        self.view.setModel(self.model)
        self.view.setIconSize(self.thumbs.size)
        self.view.setSpacing(1)
        self.view.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.view.setDragDropMode(QAbstractItemView.DragDrop)
        self.view.setDefaultDropAction(Qt.MoveAction)
        self.view.setDragEnabled(True)
        self.view.setAcceptDrops(True)
        self.view.setDropIndicatorShown(True)
        self.view.deletePressed.connect(self.remove_selected)
        self.view.doubleClicked.connect(lambda i: session.select(self.model.ids[i.row()]) if i.isValid() else None)
        self.view.selectionModel().currentChanged.connect(
            lambda cur, _prev: session.select(self.model.ids[cur.row()]) if cur.isValid() else None)

        self.context_menu = None        # the last right-click menu (tests read it)
        context_menus.install(self.view, self.menu_at)

        self.hint = QLabel("Drag items here from the catalog, or drop image files to add new items.")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #6b7280;")
        self.status = QLabel("")
        self.status.setStyleSheet("color: #6b7280;")
        # two short rows of buttons keep the dock narrow
        self.buttons: dict[str, QToolButton] = {}
        buttons = QVBoxLayout()
        buttons.setSpacing(2)
        for group in ((("New item…", self.new_item_dialog, "Add a brand-new item (Ctrl+N)"),
                       ("Remove", self.remove_selected, "Remove the selected items from the sequence (Delete)"),
                       ("Clear", self.clear, "Remove every item from the sequence")),
                      (("Delete item…", self.delete_selected_new_items,
                        "Delete the selected items you added (★ NEW) from the workspace"),
                       ("Save…", self.save_dialog, "Save this sequence in the workspace (Ctrl+S)"),
                       ("Load…", self.load_dialog, "Load a saved sequence"))):
            row = QHBoxLayout()
            row.setSpacing(2)
            for text, slot, tip in group:
                b = QToolButton()
                b.setText(text)
                b.setToolTip(tip)
                b.clicked.connect(slot)
                row.addWidget(b)
                self.buttons[text] = b
            row.addStretch(1)
            buttons.addLayout(row)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.hint)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.status)
        lay.addLayout(buttons)

        self.view.selectionModel().selectionChanged.connect(self._update_delete)
        self.thumbs.ready.connect(lambda _p: self.view.viewport().update())
        session.sequenceChanged.connect(self._sequence_changed)
        session.workspaceChanged.connect(self._workspace_changed)
        session.itemsChanged.connect(self._info.clear)
        self._sequence_changed(session.sequence)

    # ---- state -----------------------------------------------------------
    def info(self, item_id: str) -> dict:
        """Title, image and new-ness of an item: one indexed row read, cached."""
        got = self._info.get(item_id)
        if got is None:
            it = self.session.ws.item(item_id) if self.session.ws is not None else None
            if it is None:
                got = {"title": f"{item_id} (unknown)", "image": "", "is_new": False, "known": False}
            else:
                img = self.session.ws.image_path(it)
                got = {"title": it.title or item_id, "image": str(img) if img else "",
                       "is_new": it.is_new, "known": True}
            self._info[item_id] = got
        return got

    def _workspace_changed(self) -> None:
        self.undo_stack.clear()
        self._info.clear()
        self.thumbs.clear()

    def _sequence_changed(self, ids: list) -> None:
        for i in ids:                      # an id unknown before may exist now (a new item)
            if not self._info.get(i, {"known": True})["known"]:
                self._info.pop(i)
        selected = set(self.selected_rows())
        self.model.set_ids(ids)
        self.hint.setVisible(not ids)
        n_new = sum(1 for i in ids if self.info(i)["is_new"])
        self.status.setText(f"{len(ids)} item{'' if len(ids) == 1 else 's'}" + (f", {n_new} new" if n_new else ""))
        sel = self.view.selectionModel()
        for r in selected:
            if r < len(ids):
                sel.select(self.model.index(r), sel.SelectionFlag.Select)
        self._update_delete()

    @property
    def ids(self) -> list[str]:
        return list(self.session.sequence)

    def selected_rows(self) -> list[int]:
        return sorted({i.row() for i in self.view.selectionModel().selectedIndexes()})

    # ---- edits (each one undoable) --------------------------------------------
    def _edit(self, text: str, after: list[str]) -> None:
        before = self.ids
        if after != before:
            self.undo_stack.push(SetSequence(self.session, text, before, after))

    def insert(self, ids: list[str], row: int | None = None) -> None:
        if self.session.ws is None or not ids:
            return
        known = [i for i in ids if self.info(i)["known"]]
        if len(known) < len(ids):
            self.session.warn(f"{len(ids) - len(known)} dropped item(s) are not in this workspace")
        if not known:
            return
        seq = self.ids
        row = len(seq) if row is None else max(0, min(row, len(seq)))
        self._edit(f"add {len(known)} item(s)" if len(known) > 1 else f"add {self.info(known[0])['title']}",
                   seq[:row] + known + seq[row:])

    def append(self, ids: list[str]) -> None:
        self.insert(ids)

    def move_rows(self, rows: list[int], row: int) -> None:
        seq = self.ids
        rows = sorted(r for r in set(rows) if 0 <= r < len(seq))
        if not rows:
            return
        moving = [seq[r] for r in rows]
        rest = [x for k, x in enumerate(seq) if k not in set(rows)]
        row -= sum(1 for r in rows if r < row)        # rows above the target leave a gap
        row = max(0, min(row, len(rest)))
        self._edit("reorder", rest[:row] + moving + rest[row:])
        sel = self.view.selectionModel()
        sel.clearSelection()
        for k in range(row, row + len(moving)):
            sel.select(self.model.index(k), sel.SelectionFlag.Select)

    def remove_rows(self, rows: list[int]) -> None:
        seq = self.ids
        gone = set(rows)
        after = [x for k, x in enumerate(seq) if k not in gone]
        self._edit(f"remove {len(seq) - len(after)} item(s)", after)

    def remove_selected(self) -> None:
        rows = self.selected_rows()
        if not rows and self.view.currentIndex().isValid():
            rows = [self.view.currentIndex().row()]
        if rows:
            self.remove_rows(rows)
            self.view.selectionModel().clearSelection()

    def clear(self) -> None:
        self._edit("clear", [])

    def menu_for(self, rows: list[int]):
        """Right-click: remove, move to start or end, similar, copy id, delete a new item, clear."""
        return context_menus.sequence_menu(self, list(rows))

    def menu_at(self, pos):
        self.context_menu = self.menu_for(context_menus.rows_at(self.view, pos)[0])
        return self.context_menu

    def set_ids(self, ids: list[str], text: str = "load") -> None:
        self._edit(text, list(ids))

    # ---- drops -----------------------------------------------------------
    def handle_drop(self, mime: QMimeData, row: int) -> bool:
        """Where every drop lands (via SequenceModel.dropMimeData)."""
        if mime.hasFormat(MIME_ROWS):
            try:
                payload = json.loads(bytes(mime.data(MIME_ROWS)).decode())
                own = payload.get("owner") == id(self.model)
                rows = [int(r) for r in payload.get("rows", [])]
            except (ValueError, TypeError, AttributeError):
                own, rows = False, []
            if own:
                self.move_rows(rows, row)
                return True
        if mime.hasFormat(MIME_ITEMS):
            ids = decode_ids(mime.data(MIME_ITEMS))
            if ids:
                self.insert(ids, row)
                return True
            self.session.warn("the dropped data named no items")
            return False
        if mime.hasUrls():
            return self.drop_files(mime.urls(), row)
        return False

    def drop_files(self, urls: list[QUrl], row: int | None = None) -> bool:
        if self.session.ws is None:
            self.session.warn("open a workspace before adding items")
            return False
        local = [u.toLocalFile() for u in urls if u.isLocalFile()]
        if len(local) < len(urls):
            self.session.warn("only local image files can be dropped (not web addresses)")
        files = [p for p in local if os.path.isfile(p)]
        if len(files) < len(local):
            self.session.warn("folders cannot be dropped; drop image files")
        if len(files) > MAX_DROPPED_FILES:
            self.session.warn(f"{len(files)} files dropped; adding the first {MAX_DROPPED_FILES}")
            files = files[:MAX_DROPPED_FILES]
        for k, path in enumerate(files):
            self.add_image_file(path, None if row is None else row + k)
        return bool(files)

    # ---- saved sequences ------------------------------------------------------
    def save_as(self, name: str) -> None:
        if not name.strip():
            self.session.warn("a saved sequence needs a name")
            return
        run_for(self, save_named, self.session.ws_path, name.strip(), self.ids,
                 on_done=lambda n: self.session.info(f"saved sequence “{n}”"),
                 on_error=lambda exc, tb: self.session.error(f"could not save: {plain(exc)}"))

    def load_named(self, name: str) -> None:
        try:
            ids = self.session.ws.load_sequence(name)
        except KeyError as e:
            self.session.error(str(e).strip("'\""))
            return
        self.set_ids(ids, f"load “{name}”")
        self.session.info(f"loaded sequence “{name}” ({len(ids)} items)")

    def save_dialog(self) -> None:
        if self.session.ws is None:
            return
        name, ok = QInputDialog.getText(self, "Save sequence", "Name:")
        if ok:
            self.save_as(name)

    def load_dialog(self) -> None:
        if self.session.ws is None:
            return
        names = self.session.ws.sequence_names()
        if not names:
            self.session.info("no saved sequences in this workspace")
            return
        name, ok = QInputDialog.getItem(self, "Load sequence", "Sequence:", names, 0, False)
        if ok and name:
            self.load_named(name)
