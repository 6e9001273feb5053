"""The sequence panel's new items: adding one (from a dropped image or the New item dialog),
its features on a worker, and deleting items the user added. A mixin of SequencePanel, which
owns the signals (dialogOpened, itemCreated, itemsDeleted) and the state it uses."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMessageBox

from gui.new_item import (NewItemDialog, check_dropped_image, compute_item_features, create_item,
                          delete_new_items, forget_new_items, plain)
from gui.workers import run_for


class NewItemActions:
    def add_image_file(self, path: str, row: int | None = None) -> None:
        """Validate on a worker and look for the same image in the catalog; a good image opens
        the new-item dialog (which names an item that already has it), a bad one a message."""
        self.session.info(f"checking {Path(path).name}…")
        run_for(self, check_dropped_image, self.session.ws_path, path,
                on_done=lambda got: self._open_dialog(path, got[0], row, got[1]),
                on_error=lambda exc, tb: self.session.error(
                    f"{Path(path).name} cannot be added: {plain(exc)}"))

    # ---- new items --------------------------------------------------------
    def new_item_dialog(self) -> None:
        if self.session.ws is None:
            self.session.warn("open a workspace before adding items")
            return
        self._open_dialog(None, None, None)

    def _open_dialog(self, path: str | None, preview: QImage | None, row: int | None,
                     duplicates=None) -> None:
        dlg = NewItemDialog(self, image=path, preview=preview, duplicates=duplicates)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        dlg.accepted.connect(lambda d=dlg: self._create(*d.values(), row=row))
        dlg.useExisting.connect(lambda iid: self.insert([iid], row))
        if duplicates:
            self.session.warn(f"{Path(path).name} is already in the catalog as {duplicates[0][0]} "
                              f"“{duplicates[0][1]}”")
        else:
            self.session.info(f"{Path(path).name}: a new item" if path else "new item")
        self.dialog = dlg
        dlg.destroyed.connect(lambda *_: setattr(self, "dialog", None) if self.dialog is dlg else None)
        dlg.open()
        self.dialogOpened.emit(dlg)

    def _create(self, title: str, text: str, image: str | None, row: int | None) -> None:
        ws_path = self.session.ws_path
        self._busy += 1
        self.session.info(f"adding “{title}”…")
        run_for(self, create_item, ws_path, title, text, image,
                 on_done=lambda item: self._created(ws_path, item, row),
                 on_error=lambda exc, tb: self._failed(f"could not add “{title}”: {plain(exc)}"))

    def _created(self, ws_path, item, row: int | None) -> None:
        self._busy -= 1
        if ws_path != self.session.ws_path:
            return          # the user switched workspace meanwhile
        self._info.pop(item.id, None)
        self.session.itemsChanged.emit()
        self.insert([item.id], row)
        self.session.info(f"added new item {item.id} “{item.title}”; computing its features…")
        self.itemCreated.emit(item.id)
        self._busy += 1
        run_for(self, compute_item_features, ws_path, [item.id],
                 on_done=lambda note: self._features_done(item, note),
                 on_error=lambda exc, tb: self._failed(
                     f"{item.id}: features not computed ({plain(exc)}); "
                     "the item is in the sequence and gets them with the next feature build"))

    def _features_done(self, item, note: str) -> None:
        self._busy -= 1
        self.session.info(f"{item.id} “{item.title}”: {note}" if note else
                          f"{item.id} “{item.title}”: features and keywords ready")
        self.session.itemsChanged.emit()

    def _failed(self, text: str) -> None:
        self._busy -= 1
        self.session.error(text)

    def selected_new_items(self) -> list[str]:
        rows = self.selected_rows() or ([self.view.currentIndex().row()] if self.view.currentIndex().isValid() else [])
        ids = self.ids
        return list(dict.fromkeys(ids[r] for r in rows if r < len(ids) and self.info(ids[r])["is_new"]))

    def _update_delete(self, *_) -> None:
        self.buttons["Delete item…"].setEnabled(bool(self.selected_new_items()))

    def delete_selected_new_items(self) -> None:
        """Ask, then delete the selected items the user added from the workspace (so they go
        into no later training run) and from the sequence."""
        ids = self.selected_new_items()
        if not ids:
            self.session.info("select an item you added (marked ★ NEW) to delete it; "
                              "catalog items can only be removed from the sequence")
            return
        names = ", ".join(f"“{self.info(i)['title']}”" for i in ids[:3]) + (" …" if len(ids) > 3 else "")
        box = QMessageBox(QMessageBox.Question, "Delete new items",
                          f"Delete {names} from the workspace? {'It' if len(ids) == 1 else 'They'} "
                          "will be gone from the catalog, this sequence and saved sequences, and "
                          "from later training runs.", QMessageBox.Yes | QMessageBox.Cancel, self)
        box.setDefaultButton(QMessageBox.Cancel)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.finished.connect(lambda r: r == QMessageBox.Yes and self.delete_new_items(ids))
        box.open()
        self.dialogOpened.emit(box)

    def delete_new_items(self, ids: list[str]) -> None:
        ws_path, rec = self.session.ws_path, self.session.recommender
        self._busy += 1

        def work():
            gone = delete_new_items(ws_path, ids)
            if rec is not None:
                forget_new_items(rec, gone)
            return gone
        run_for(self, work, on_done=lambda gone: self._deleted(ws_path, gone),
                on_error=lambda exc, tb: self._failed(f"could not delete: {plain(exc)}"))

    def _deleted(self, ws_path, gone: list[str]) -> None:
        self._busy -= 1
        if ws_path != self.session.ws_path:
            return
        for i in gone:
            self._info.pop(i, None)
        # the items no longer exist: the edit is not undoable, and neither is any older one
        self.session.set_sequence([x for x in self.ids if x not in set(gone)])
        self.undo_stack.clear()
        self.session.itemsChanged.emit()
        self.session.info(f"deleted {len(gone)} new item{'' if len(gone) == 1 else 's'} from the workspace")
        self.itemsDeleted.emit(gone)

    def busy(self) -> bool:
        return self._busy > 0
