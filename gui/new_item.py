"""New items: the dialog, the checks done on workers, and deleting items the user added.

A dropped image is validated fully and compared with the catalog's own images first, so a
picture that is already an item is offered as that item instead of silently becoming a copy.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPlainTextEdit, QPushButton, QVBoxLayout)

from gui.thumbnails import decode_image
from gui.workers import run_for


# ---- work done on workers -------------------------------------------------------------
def check_image(path: str) -> QImage:
    """Validate an image fully (core's safe loader) and return a preview. Raises with a plain message."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p.name}: not a file")
    from core.features.images import load_image
    load_image(p)
    return decode_image(str(p), 240, 240)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def same_image_items(ws_path, path: str) -> list[tuple[str, str]]:
    """(id, title) of the workspace items whose image file has exactly these bytes.
    Only files of the same size are hashed, so a large catalog costs one stat per image."""
    from core.workspace import Workspace
    src = Path(path)
    size, digest, out = src.stat().st_size, None, []
    with Workspace.open(ws_path) as ws:
        for item_id, title, image in ws.db.execute(
                "SELECT id, title, image FROM items WHERE image IS NOT NULL AND image != '' ORDER BY id"):
            p = Path(image) if Path(image).is_absolute() else Path(ws_path) / image
            try:
                if p.stat().st_size != size:
                    continue
                digest = digest or _sha256(src)
                if _sha256(p) == digest:
                    out.append((item_id, title or item_id))
            except OSError:
                continue
    return out


def check_dropped_image(ws_path, path: str) -> tuple[QImage, list[tuple[str, str]]]:
    """Worker: the preview of a dropped image and the items that already have it."""
    return check_image(path), same_image_items(ws_path, path)


def create_item(ws_path, title: str, text: str, image: str | None):
    """Copy the image into the workspace (the original may move) and add the item."""
    from core.workspace import Workspace
    rel = None
    if image:
        src = Path(image)
        digest = _sha256(src)[:16]
        dest_dir = Path(ws_path) / "images" / "new"
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"{digest}{src.suffix.lower()}"
        if not dest.exists():
            shutil.copyfile(src, dest)
        rel = str(dest.relative_to(ws_path))
    with Workspace.open(ws_path) as ws:
        return ws.add_new_item(title.strip(), text.strip(), image=rel)


def compute_item_features(ws_path, item_ids: list[str], progress=None) -> str:
    """Features and keywords for new items; a plain note when the workspace has none to extend."""
    from core.workspace import Workspace
    from core.features import build
    from core.features import store
    with Workspace.open(ws_path) as ws:
        if not store.path_for(ws.features_dir, "text").is_file():
            return "no features built in this workspace yet; the new item gets them with the next feature build"
        kw = {"progress": progress} if progress is not None else {}
        build.add_items(ws, item_ids, **kw)
    return ""


def delete_new_items(ws_path, item_ids: list[str]) -> list[str]:
    """Worker: delete items the user added (never catalog items), take them out of saved
    sequences, and remove their copied image when no other item uses it. Returns the ids."""
    from core.workspace import Workspace
    gone = []
    with Workspace.open(ws_path) as ws:
        for i in item_ids:
            it = ws.item(i)
            if it is None:
                continue
            if not it.is_new:
                raise ValueError(f"{i} “{it.title}” is a catalog item; only items you added can be deleted")
            ws.delete_item(i)
            gone.append(i)
            if it.image and it.image.startswith("images/new/") and not ws.db.execute(
                    "SELECT 1 FROM items WHERE image=?", (it.image,)).fetchone():
                (Path(ws_path) / it.image).unlink(missing_ok=True)
        for name in ws.sequence_names():
            ids = ws.load_sequence(name)
            kept = [x for x in ids if x not in gone]
            if kept != ids:
                ws.save_sequence(name, kept)
    return gone


def forget_new_items(rec, item_ids: list[str]) -> None:
    """Worker, holding the model's lock: a loaded model stops knowing deleted new items
    (it keeps the vectors of new items it has seen, keyed by id)."""
    from gui.model_calls import model_lock
    vecs = getattr(rec, "_new_vecs", None)
    if vecs is None:
        return
    with model_lock(rec):
        for i in item_ids:
            vecs.pop(i, None)
        rec.new_ids = list(vecs)
        if not vecs:
            rec.new_table = None
        else:
            import torch
            with torch.no_grad():
                rec.new_table = rec.model.vectors_to_table(
                    {m: torch.stack([vecs[i][m] for i in rec.new_ids]) for m in rec.model.modalities}).float()


# ---- the dialog ---------------------------------------------------------------------------
class NewItemDialog(QDialog):
    """Title, text and an optional image (validated on a worker before OK is possible).
    `duplicates`: items that already have this image; the dialog says so and offers them."""
    useExisting = Signal(str)      # the user chose an item that already has the image

    def __init__(self, parent=None, image: str | None = None, preview: QImage | None = None,
                 duplicates: list[tuple[str, str]] | None = None):
        super().__init__(parent)
        self.setWindowTitle("New item")
        self.image_path: str | None = None
        self.duplicates = list(duplicates or [])
        self.preview = QLabel("no image")
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setFixedSize(QSize(240, 240))
        self.preview.setStyleSheet("QLabel { background: #eef0f3; border: 1px solid #c8ccd2; }")
        self.image_note = QLabel("")
        self.image_note.setWordWrap(True)
        self.choose = QPushButton("Choose image…")
        self.choose.clicked.connect(self._choose)
        self.title = QLineEdit(placeholderText="Title (required)")
        self.text = QPlainTextEdit(placeholderText="Description (optional): what the item is, its features…")
        self.text.setMinimumHeight(90)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.duplicate_note = QLabel()
        self.duplicate_note.setWordWrap(True)
        self.duplicate_note.setStyleSheet("QLabel { background: #fef3c7; color: #78350f; padding: 6px; }")
        self.use_existing = QPushButton()
        self.use_existing.clicked.connect(self._use_existing)
        form = QFormLayout()
        form.addRow("Title", self.title)
        form.addRow("Text", self.text)
        left = QVBoxLayout()
        left.addWidget(self.preview)
        left.addWidget(self.choose)
        left.addWidget(self.image_note)
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self.duplicate_note)
        right.addWidget(self.use_existing, 0, Qt.AlignLeft)
        right.addLayout(form)
        right.addWidget(self.buttons)
        lay = QHBoxLayout(self)
        lay.addLayout(left)
        lay.addLayout(right, 1)
        self._checking = False
        self.title.textChanged.connect(self._update_ok)
        self._show_duplicates()
        if image:
            self.title.setText(Path(image).stem.replace("_", " ").replace("-", " ").strip().capitalize())
            if preview is not None:
                self._set_image(image, preview)
            else:
                self.set_image_file(image)
        self._update_ok()

    def _show_duplicates(self) -> None:
        dup = self.duplicates
        self.duplicate_note.setVisible(bool(dup))
        self.use_existing.setVisible(bool(dup))
        if not dup:
            return
        first_id, first_title = dup[0]
        more = f" (and {len(dup) - 1} more)" if len(dup) > 1 else ""
        self.duplicate_note.setText(f"<b>This image is already in the catalog</b> as {first_id} "
                                    f"“{first_title}”{more}. Add that item instead, or press OK to "
                                    "make a separate new item anyway.")
        self.use_existing.setText(f"Add “{first_title}” instead")

    def _use_existing(self) -> None:
        self.useExisting.emit(self.duplicates[0][0])
        self.reject()

    def _update_ok(self) -> None:
        ok = bool(self.title.text().strip()) and not self._checking
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(ok)

    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose an image", "",
                                              "Images (*.jpg *.jpeg *.png *.webp *.gif *.bmp)")
        if path:
            self.set_image_file(path)

    def set_image_file(self, path: str) -> None:
        self._checking = True
        self._update_ok()
        self.image_note.setText("checking the image…")
        run_for(self, check_image, path, on_done=lambda img: self._set_image(path, img),
                on_error=lambda exc, tb: self._bad_image(path, exc))

    def _set_image(self, path: str, image: QImage) -> None:
        self._checking = False
        self.image_path = path
        self.preview.setPixmap(QPixmap.fromImage(image))
        self.image_note.setText(Path(path).name)
        self._update_ok()

    def _bad_image(self, path: str, exc: BaseException) -> None:
        self._checking = False
        self.image_path = None
        self.preview.setText("no image")
        self.image_note.setText(f"<span style='color:#c0392b'>{Path(path).name} cannot be used: "
                                f"{plain(exc)}</span>")
        self._update_ok()

    def values(self) -> tuple[str, str, str | None]:
        return self.title.text().strip(), self.text.toPlainText().strip(), self.image_path


def plain(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
