"""The import wizard's CLIP weights row: a field for a local weights file, and a check, done
before the import starts, of whether CLIP weights can be had at all (so the wizard says so
up front instead of learning it at the end of a long import)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from gui.wording import for_the_app
from gui.workers import run_for


def clip_status(model: str, tag: str, weights: str) -> tuple[bool, str]:
    """Worker: (usable, what to tell the user). Never downloads: a weights file is opened
    (its header only), an open_clip tag is looked up in the local caches, and the model hub
    is only asked whether it answers."""
    from core.features import keywords
    if weights:
        p = Path(weights).expanduser()
        if not p.is_file():
            return False, f"{p.name}: no such file"
        if p.suffix.lower() != ".safetensors":
            return False, f"{p.name}: CLIP weights must be a .safetensors file (pickles are never loaded)"
        try:
            from safetensors import safe_open
            with safe_open(str(p), framework="numpy") as f:
                n = len(list(f.keys()))
        except Exception as e:  # noqa: BLE001 - any parse failure: not a weights file
            return False, f"{p.name} is not a readable safetensors file ({e})"
        return True, f"CLIP weights: {p.name} ({n} tensors)"
    if not keywords._offline() and keywords._reachable():
        return True, (f"CLIP {model} ({tag}): open_clip fetches the weights during the import if they are "
                      "not on this computer yet")
    try:
        found = keywords._pretrained_file(model, tag)   # offline here: cache lookups only
    except keywords.ClipUnavailable as e:
        return False, for_the_app(str(e))
    return True, f"CLIP {model} ({tag}): weights found on this computer ({Path(found).name})"


class ClipWeightsRow(QWidget):
    """A weights-file field with Browse; `note` (placed by the page) says what the check found."""
    checked = Signal(bool)          # the check finished: usable or not

    def __init__(self, settings=None, parent=None):
        super().__init__(parent)
        self.settings = settings
        self.ok: bool | None = None          # None while unchecked or checking
        self.edit = QLineEdit(placeholderText="optional: a local CLIP .safetensors file")
        if settings is not None and settings.clip_weights:
            self.edit.setText(settings.clip_weights)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.note = QLabel()
        self.note.setWordWrap(True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(browse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        # self.note goes in a row of the page's own form: a wrapped label only gets the
        # height its lines need from a layout that asks it (height-for-width)
        self.edit.editingFinished.connect(self.check)

    def weights(self) -> str:
        return self.edit.text().strip()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CLIP weights", self.weights(), "safetensors (*.safetensors)")
        if path:
            self.edit.setText(path)
            self.check()

    def check(self) -> None:
        s = self.settings
        model = s.clip_model if s is not None else "ViT-B-32"
        tag = s.clip_tag if s is not None else "laion2b_s34b_b79k"
        self.ok = None
        self.note.setStyleSheet("color: #4b5563;")
        self.note.setText("checking the CLIP weights…")
        weights = self.weights()
        run_for(self, clip_status, model, tag, weights,
                on_done=lambda r: self._checked(weights, *r),
                on_error=lambda exc, tb: self._checked(weights, False, str(exc)))

    def _checked(self, weights: str, ok: bool, text: str) -> None:
        if weights != self.weights():
            return                              # the field changed meanwhile: a newer check follows
        self.ok = ok
        self.note.setStyleSheet("color: #166534;" if ok else "color: #b45309;")
        self.note.setText(text if ok else f"{text} (The import then builds text features only, "
                          "unless you choose “The catalog's own tags”.)")
        if ok and self.settings is not None:
            self.settings.clip_weights = weights
        self.checked.emit(ok)
