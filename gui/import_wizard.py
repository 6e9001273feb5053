"""Import wizard: format -> files -> options and target folder -> import (and features) on a worker.

Fields per format follow core.importers' `sources` keys. The import and the
feature build run on a worker with a progress bar; errors are shown as text on
the last page, and Back lets the user fix the input and try again.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QProgressBar, QPushButton, QRadioButton, QSpinBox, QVBoxLayout,
                               QWidget, QWizard, QWizardPage)

from core.cli_import import COLD_SHARE   # one default for the wizard and `msm4sr import`
from gui.clip_check import ClipWeightsRow
from gui.import_formats import FORMAT_FIELDS, FORMAT_INFO, KEYWORD_CHOICES, parse_columns, run_import
from gui.wording import for_the_app
from gui.workers import run_for

class FormatPage(QWizardPage):
    def __init__(self):
        super().__init__()
        self.setTitle("Catalog format")
        self.setSubTitle("What kind of files hold your catalog and its interactions?")
        self.group = QButtonGroup(self)
        lay = QVBoxLayout(self)
        for k, (fmt, text) in enumerate(FORMAT_INFO.items()):
            b = QRadioButton(f"{fmt}  —  {text}")
            b.setProperty("format", fmt)
            self.group.addButton(b, k)
            lay.addWidget(b)
            if k == 0:
                b.setChecked(True)
        lay.addStretch(1)

    def format(self) -> str:
        return self.group.checkedButton().property("format")

    def set_format(self, fmt: str) -> None:
        for b in self.group.buttons():
            if b.property("format") == fmt:
                b.setChecked(True)
                return
        raise KeyError(fmt)


class FilesPage(QWizardPage):
    def __init__(self, wizard: "ImportWizard"):
        super().__init__()
        self.wiz = wizard
        self.setTitle("Files")
        self.form = QFormLayout(self)
        self.inputs: dict[str, QWidget] = {}
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #b91c1c;")
        self.problem.setWordWrap(True)

    def initializePage(self) -> None:
        fmt = self.wiz.format_page.format()
        self.setSubTitle(f"{FORMAT_INFO[fmt]}. Give at least one file.")
        old = {k: self.value(k) for k in self.inputs}
        while self.form.rowCount():
            self.form.removeRow(0)
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #b91c1c;")
        self.problem.setWordWrap(True)
        self.inputs = {}
        for key, label, kind in FORMAT_FIELDS[fmt]:
            if kind == "check":
                w = QCheckBox(label)
                w.toggled.connect(self.completeChanged)
                self.form.addRow("", w)
                self.inputs[key] = w
                continue
            edit = QLineEdit()
            edit.setObjectName(key)
            edit.textChanged.connect(self.completeChanged)
            if kind == "columns":
                edit.setPlaceholderText("optional: user=reviewer, item=asin, timestamp=time, title=name…")
                self.form.addRow(label, edit)
            else:
                row = QHBoxLayout()
                row.addWidget(edit, 1)
                browse = QPushButton("Browse…")
                browse.clicked.connect(lambda _=False, e=edit, k=kind, l=label: self._browse(e, k, l))
                row.addWidget(browse)
                self.form.addRow(label, row)
            self.inputs[key] = edit
            if old.get(key):
                edit.setText(str(old[key]))
        self.form.addRow(self.problem)

    def _browse(self, edit: QLineEdit, kind: str, label: str) -> None:
        if kind == "dir":
            path = QFileDialog.getExistingDirectory(self, label, edit.text())
        else:
            path, _ = QFileDialog.getOpenFileName(self, label, edit.text())
        if path:
            edit.setText(path)

    def set_value(self, key: str, value) -> None:
        w = self.inputs[key]
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        else:
            w.setText(str(value))

    def value(self, key: str):
        w = self.inputs[key]
        return w.isChecked() if isinstance(w, QCheckBox) else w.text().strip()

    def sources(self) -> dict:
        fmt = self.wiz.format_page.format()
        out = {}
        for key, _label, kind in FORMAT_FIELDS[fmt]:
            v = self.value(key)
            if not v:
                continue
            out[key] = parse_columns(v) if kind == "columns" else v
        return out

    def check(self) -> str | None:
        fmt = self.wiz.format_page.format()
        given = 0
        for key, label, kind in FORMAT_FIELDS[fmt]:
            v = self.value(key)
            if not v or kind == "check":
                continue
            if kind == "file":
                given += 1
                if not os.path.isfile(v):
                    return f"{label}: no such file"
            elif kind == "dir" and not os.path.isdir(v):
                return f"{label}: no such folder"
            elif kind == "columns":
                try:
                    parse_columns(v)
                except ValueError as e:
                    return str(e)
        return None if given else ""

    def isComplete(self) -> bool:
        problem = self.check()
        self.problem.setText(problem or "")
        return problem is None


class OptionsPage(QWizardPage):
    def __init__(self, settings=None):
        super().__init__()
        self.settings = settings
        self.setTitle("Options and target")
        self.setSubTitle("How to clean the data, and where the new workspace goes.")
        self.kcore = QSpinBox(minimum=0, maximum=1000, value=5)
        self.kcore.setToolTip("Drop users and items with fewer interactions than this, repeatedly (0: keep all)")
        self.cold = QDoubleSpinBox(minimum=0.0, maximum=0.9, singleStep=0.05, value=COLD_SHARE, decimals=2)
        self.cold.setToolTip("Share of items held out of training, to test cold-start recommendation")
        self.skip_bad = QCheckBox("Skip bad lines (and list them) instead of stopping at the first")
        self.features = QCheckBox("Build features after the import (text vectors and image keywords)")
        self.features.setChecked(True)
        self.keywords = QComboBox()
        for key, text in KEYWORD_CHOICES:
            self.keywords.addItem(text, key)
        self.features.toggled.connect(self.keywords.setEnabled)
        self.clip = ClipWeightsRow(settings)
        self.features.toggled.connect(self._clip_shown)
        self.keywords.currentIndexChanged.connect(self._clip_shown)
        self.target = QLineEdit()
        self.target.textChanged.connect(self.completeChanged)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.target, 1)
        row.addWidget(browse)
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #b91c1c;")
        self.problem.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("k-core", self.kcore)
        form.addRow("Cold-start share", self.cold)
        form.addRow("", self.skip_bad)
        form.addRow("", self.features)
        form.addRow("Image keywords", self.keywords)
        form.addRow("CLIP weights", self.clip)
        form.addRow("", self.clip.note)
        self.clip_label = form.labelForField(self.clip)
        form.addRow("Workspace folder", row)
        form.addRow(self.problem)

    def uses_clip(self) -> bool:
        return self.features.isChecked() and self.keywords.currentData() == "clip"

    def _clip_shown(self, *_) -> None:
        for w in (self.clip, self.clip_label, self.clip.note):
            w.setVisible(self.uses_clip())
        if self.uses_clip() and self.clip.ok is None and self.isVisible():
            self.clip.check()

    def initializePage(self) -> None:
        # check the CLIP weights now, not at the end of the import
        self._clip_shown()
        if self.uses_clip():
            self.clip.check()

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Workspace folder", self.target.text())
        if path:
            self.target.setText(path)

    def check(self) -> str | None:
        t = self.target.text().strip()
        if not t:
            return ""
        p = Path(t).expanduser()
        if p.exists() and not p.is_dir():
            return "the workspace must be a folder"
        if p.is_dir() and any(p.iterdir()) and not (p / "catalog.sqlite").exists():
            return "that folder has other files in it; choose a new or empty folder"
        return None

    def isComplete(self) -> bool:
        problem = self.check()
        self.problem.setText(problem or "")
        return problem is None

    def options(self) -> dict:
        return {"kcore": self.kcore.value(), "cold_share": round(self.cold.value(), 4),
                "skip_bad_lines": self.skip_bad.isChecked()}


class RunPage(QWizardPage):
    def __init__(self, wizard: "ImportWizard"):
        super().__init__()
        self.wiz = wizard
        self.setTitle("Import")
        self.bar = QProgressBar()
        self.stage = QLabel()
        self.log = QPlainTextEdit(readOnly=True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.stage)
        lay.addWidget(self.bar)
        lay.addWidget(self.log, 1)
        self.running = False
        self.result: dict | None = None
        self.error: str | None = None

    def initializePage(self) -> None:
        self.result, self.error = None, None
        self.log.clear()
        self.wiz.start_import()

    def isComplete(self) -> bool:
        return self.result is not None and not self.running


class ImportWizard(QWizard):
    imported = Signal(str)        # the workspace folder, once the wizard is finished
    finishedImport = Signal(bool)  # the worker ended (True: success)

    def __init__(self, session, settings=None, parent=None):
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.setWindowTitle("Import catalog")
        self.setWizardStyle(QWizard.ClassicStyle)
        self.resize(720, 480)
        self.format_page = FormatPage()
        self.files_page = FilesPage(self)
        self.options_page = OptionsPage(settings)
        self.run_page = RunPage(self)
        for page in (self.format_page, self.files_page, self.options_page, self.run_page):
            self.addPage(page)
        self.accepted.connect(self._accepted)

    def target(self) -> str:
        return str(Path(self.options_page.target.text().strip()).expanduser().resolve())

    def _clip(self) -> dict:
        s = self.settings
        weights = self.options_page.clip.weights()
        if s is None:
            return {"clip_pretrained": None, "clip_weights": weights} if weights else {}
        clip = {"clip_model": s.clip_model}
        if weights:
            clip.update(clip_pretrained=None, clip_weights=weights)
        else:
            clip["clip_pretrained"] = s.clip_tag
        if s.device not in ("", "auto"):
            clip["device"] = s.device
        return clip

    def start_import(self) -> None:
        page = self.run_page
        page.running = True
        page.completeChanged.emit()
        fmt = self.format_page.format()
        sources = self.files_page.sources()
        opts = self.options_page.options()
        features = self.options_page.features.isChecked()
        page.log.appendPlainText(f"Importing {fmt} into {self.target()}…")
        page.bar.setRange(0, 0)
        self.button(QWizard.BackButton).setEnabled(False)
        run_for(self, run_import, self.target(), fmt, sources, opts, features,
                self.options_page.keywords.currentData(), self._clip(),
                on_progress=self._progress, on_done=self._done, on_error=self._failed)

    def _progress(self, stage: str, done: int, total: int) -> None:
        page = self.run_page
        page.stage.setText(f"{stage}…")
        page.bar.setRange(0, total if total > 0 else 0)
        page.bar.setValue(min(done, total) if total > 0 else 0)

    def _done(self, result: dict) -> None:
        page = self.run_page
        page.running, page.result = False, result
        rep = result["import"]
        page.bar.setRange(0, 1)
        page.bar.setValue(1)
        page.stage.setText("Done.")
        lines = [f"{rep.users:,} users, {rep.items:,} items, {rep.interactions:,} interactions"
                 f"{f', {rep.cold_items:,} cold-start items' if rep.cold_items else ''}."]
        if rep.items_without_image:
            lines.append(f"{len(rep.items_without_image):,} items have no image.")
        if rep.skipped_lines:
            lines.append(f"{len(rep.skipped_lines):,} bad lines skipped, e.g.:")
            lines += [f"  {s}" for s in rep.skipped_lines[:10]]
        if rep.download_failures:
            lines.append(f"{len(rep.download_failures):,} image downloads failed.")
        feats = result.get("features")
        if feats is not None:
            lines.append(f"Features: {feats.text_items:,} items with text vectors, "
                         f"{feats.image_items:,} with image keywords"
                         f"{f' ({feats.image_source})' if feats.image_source else ''}.")
            if feats.clip_message:
                lines.append(f"Image keywords: {for_the_app(feats.clip_message)}")
        if result.get("features_error"):
            lines.append(for_the_app(f"The catalog was imported, but building its features failed: "
                                     f"{result['features_error']}. Build them later with `msm4sr features`."))
        lines.append("Press Finish to open the workspace.")
        page.log.appendPlainText("\n".join(lines))
        self.button(QWizard.BackButton).setEnabled(True)
        page.completeChanged.emit()
        self.finishedImport.emit(True)

    def _failed(self, exc: BaseException, tb: str) -> None:
        page = self.run_page
        page.running, page.error = False, for_the_app(str(exc) or type(exc).__name__)
        page.bar.setRange(0, 1)
        page.bar.setValue(0)
        page.stage.setText("<b style='color:#b91c1c'>The import failed.</b>")
        page.log.appendPlainText(f"{page.error}\n\nNothing was stored. Go Back to fix the input and try again.")
        self.button(QWizard.BackButton).setEnabled(True)
        page.completeChanged.emit()
        self.finishedImport.emit(False)

    def _accepted(self) -> None:
        if self.run_page.result is not None:
            self.imported.emit(self.target())
