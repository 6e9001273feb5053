"""MSM4SR Studio main window and the `msm4sr-studio` entry point.

The window is shown first; the demo workspace (when no workspace is given) and
the model are prepared afterwards on workers, so launch feels instant even
though torch takes seconds to import.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow,
                               QMessageBox, QProgressBar, QVBoxLayout, QWidget)

from core import paths
from gui import window_layout
from gui.about import add_help_menu
from gui.app_support import (_note, _panel, demo_workspace, import_modules,
                             install_excepthook, is_demo, load_model, model_device, newest_model,
                             unique_keys)
from gui.catalog import CatalogPanel
from gui.explore_docks import MAP_PANEL, add_explore_docks, add_explore_menus
from gui.inspector import InspectorPanel
from gui.screenshot import Screenshot, demo_sequence
from gui.switching import may_leave_workspace
from gui.sequence import SequencePanel
from gui.settings import Settings
from gui.state import Session
from gui.workers import run_for

__all__ = ["MainWindow", "main", "demo_sequence", "install_excepthook", "unique_keys", "Screenshot"]

DEMO_MODEL = paths.demo_model_dir()     # the shipped one: in the wheel, or the checkout's


def _workspace_counts(path) -> dict:
    """Worker: the counts the window reports on opening, on the worker's own connection."""
    from core.workspace import Workspace
    with Workspace.open(path) as ws:
        return ws.counts()


# Panels whose modules import pyqtgraph (about 2 s): imported on a worker once the window is up.
LAZY_PANELS = (("Attention", "attention", "AttentionPanel"), ("Training", "training", "TrainingPanel"),
               MAP_PANEL)


class MainWindow(QMainWindow):
    modelLoaded = Signal(object)     # path of the loaded checkpoint, or None when it failed
    workspaceOpened = Signal(str)
    panelsReady = Signal()           # the lazily built panels are in their docks

    def __init__(self, session: Session | None = None, settings: Settings | None = None, parent=None,
                 remember_layout: bool = True):
        super().__init__(parent)
        self.remember_layout = remember_layout      # off for --screenshot: same picture every time
        self.session = session or Session(self)
        self.settings = settings or Settings()
        self.setWindowTitle("MSM4SR Studio")
        self.resize(1440, 900)
        self.setDockNestingEnabled(True)
        # side columns run the full height; attention/training sit under the catalog only
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        self.model_loading = False
        self._errors: QMessageBox | None = None

        # central: demo banner above the catalog grid
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel { background: #fef3c7; color: #78350f; padding: 6px 10px;"
                                  " border-bottom: 1px solid #f59e0b; }")
        self.banner.setVisible(False)
        self.catalog = CatalogPanel(self.session, self)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.banner)
        lay.addWidget(self.catalog)
        self.setCentralWidget(central)

        self.inspector = InspectorPanel(self.session, self.settings, self)
        self.sequence = SequencePanel(self.session, self)
        self.recommendations = _panel("recommendations", "RecommendationsPanel", self.session, self)
        self.attention = _note("loading…")
        self.training = _note("loading…")
        self.panels_ready = False
        self._panels_started = False
        self.docks: dict[str, QDockWidget] = {}
        # left column reads top to bottom: the sequence, then what comes next;
        # the inspector on the right; attention and training share the bottom
        self._dock("Sequence", self.sequence, Qt.LeftDockWidgetArea)
        self._dock("Recommendations", self.recommendations, Qt.LeftDockWidgetArea)
        self._dock("Inspector", self.inspector, Qt.RightDockWidgetArea)
        self._dock("Attention", self.attention, Qt.BottomDockWidgetArea)
        self._dock("Training", self.training, Qt.BottomDockWidgetArea)
        self.splitDockWidget(self.docks["Sequence"], self.docks["Recommendations"], Qt.Vertical)
        self.tabifyDockWidget(self.docks["Attention"], self.docks["Training"])
        self.docks["Attention"].raise_()
        add_explore_docks(self)         # Similar tab, why-this panel, item map dock
        self._restored = False

        # status bar: messages on the left, model/device on the right
        self.message = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.model_label = QLabel("model: none")
        self.model_label.setStyleSheet("color: #4b5563; padding: 0 6px;")
        self._message_timer = QTimer(self, singleShot=True)
        self._message_timer.timeout.connect(self.clear_message)
        self.statusBar().addWidget(self.message, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.model_label)

        self._build_menus()
        self.catalog.appendRequested.connect(self.sequence.append)
        self.session.message.connect(self.show_message)
        self.session.workspaceChanged.connect(self._workspace_changed)
        self.session.modelChanged.connect(self._model_changed)
        if remember_layout:
            self._restored = self.settings.restore_window(self)

    # ---- layout ---------------------------------------------------------------
    def _dock(self, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(name, self)
        dock.setObjectName(f"dock-{name.lower()}")    # saveState() keys docks by object name
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, dock)
        self.docks[name] = dock
        return dock

    def _action(self, menu, text: str, slot, shortcut=None, context=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if context is not None:
            act.setShortcutContext(context)
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        self.act_open = self._action(m, "&Open workspace…", self.open_workspace_dialog, QKeySequence.Open)
        self.act_import = self._action(m, "&Import catalog…", self.import_wizard, "Ctrl+I")
        self.act_models = self._action(m, "&Models…", self.models_dialog, "Ctrl+M")
        add_explore_menus(self, m)      # Compare models…, Export ▸
        m.addSeparator()
        self.act_quit = self._action(m, "&Quit", self.close, QKeySequence.Quit)

        m = mb.addMenu("&Sequence")
        self.act_new_item = self._action(m, "&New item…", self.sequence.new_item_dialog, QKeySequence.New)
        undo = self.sequence.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.Undo)
        redo = self.sequence.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts(unique_keys([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")],
                                      QKeySequence.keyBindings(QKeySequence.Redo)))
        m.addAction(undo)
        m.addAction(redo)
        self.act_undo, self.act_redo = undo, redo
        m.addSeparator()
        # Delete acts on the sequence only, so the search box keeps its own Delete key
        self.act_remove = self._action(m, "&Remove selected", self.sequence.remove_selected,
                                       QKeySequence.Delete, Qt.WidgetWithChildrenShortcut)
        self.docks["Sequence"].addAction(self.act_remove)
        self.act_clear = self._action(m, "&Clear", self.sequence.clear)
        m.addSeparator()
        self.act_save = self._action(m, "&Save…", self.sequence.save_dialog, QKeySequence.Save)
        self.act_load = self._action(m, "&Load…", self.sequence.load_dialog, "Ctrl+L")

        m = mb.addMenu("&View")
        self.act_search = self._action(m, "Find in catalog", self.catalog.focus_search, QKeySequence.Find)
        m.addSeparator()
        for dock in self.docks.values():
            m.addAction(dock.toggleViewAction())
        add_help_menu(self)

    # ---- messages -----------------------------------------------------------
    MESSAGE_MS = {"info": 8000, "warning": 20000}     # errors stay until the next message

    def show_message(self, level: str, text: str) -> None:
        colour = {"error": "#b91c1c", "warning": "#b45309"}.get(level, "#1f2937")
        self.message.setStyleSheet(f"color: {colour};")
        self.message.setText(text)
        self.message.setToolTip(text)
        # "checking x.png…" must not read as the state of things minutes later
        self._message_timer.stop()
        if level in self.MESSAGE_MS:
            self._message_timer.start(self.MESSAGE_MS[level])
        if level == "error":
            # non-modal: the window stays usable; one box, updated, never a pile of them
            if self._errors is None:
                self._errors = QMessageBox(QMessageBox.Warning, "MSM4SR Studio", "", QMessageBox.Ok, self)
                self._errors.setWindowModality(Qt.NonModal)
            self._errors.setText(text)
            self._errors.show()

    def clear_message(self) -> None:
        self._message_timer.stop()
        self.message.clear()
        self.message.setToolTip("")

    def _set_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, total if total > 0 else 0)
        self.progress.setValue(done)
        self.progress.setFormat(f"{stage} %p%")

    # ---- workspace ------------------------------------------------------------
    questionAsked = Signal(object)   # a QMessageBox is about to be shown (tests answer it)

    def ask(self, box: QMessageBox) -> int:
        """A modal question; the answer (a standard button)."""
        self.questionAsked.emit(box)
        return box.exec()

    def may_leave_workspace(self, path) -> bool:
        return may_leave_workspace(self, path)

    def open_workspace(self, path, ask: bool = True) -> bool:
        if ask and not self.may_leave_workspace(path):
            return False
        try:
            self.session.open_workspace(path)
        except Exception as e:  # noqa: BLE001 - a bad folder is a message, not a crash
            self.session.error(f"Cannot open {path}: {e}")
            return False
        return True

    def open_workspace_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open workspace", self.settings.last_workspace)
        if path:
            if self.open_workspace(path):
                self.load_model(newest_model(path))

    def _workspace_changed(self) -> None:
        # nothing of the previous workspace stays on screen: its error box and message
        if self._errors is not None:
            self._errors.hide()
        self.clear_message()
        self.progress.setVisible(False)
        ws = self.session.ws
        self.settings.last_workspace = str(self.session.ws_path)
        demo = is_demo(ws)
        self.banner.setVisible(demo)
        if demo:
            self.banner.setText("<b>Demo catalog.</b> The users and their behaviour in this small built-in "
                                "catalog are simulated, so the recommendations show how the model works, "
                                "not real tastes. Import your own catalog with File › Import catalog… (Ctrl+I).")
        self.setWindowTitle(f"MSM4SR Studio — {self.session.ws_path.name}")
        # counting users and interactions scans the tables (seconds at 10M rows): on a worker
        path = self.session.ws_path
        run_for(self, _workspace_counts, path, on_done=lambda c: self._counted(path, c))
        self.workspaceOpened.emit(str(self.session.ws_path))

    def _counted(self, path: Path, counts: dict) -> None:
        if path == self.session.ws_path:
            self.session.info(f"opened {path} ({counts['items']:,} items, "
                              f"{counts['users']:,} users, {counts['interactions']:,} interactions)")

    def open_demo(self, model=None) -> None:
        """Build or find the demo workspace on a worker, then open it (and its model)."""
        self.session.info("preparing the demo workspace…")
        run_for(self, demo_workspace, on_progress=self._set_progress,
                 on_done=lambda p: self._demo_ready(p, model),
                 on_error=lambda exc, tb: self._demo_failed(exc))

    def _demo_ready(self, path: Path, model=None) -> None:
        self.progress.setVisible(False)
        if self.open_workspace(path):
            if model is None:
                model = DEMO_MODEL if (DEMO_MODEL / "manifest.json").exists() else newest_model(path)
            self.load_model(model)
            ws = self.session.ws
            if not self.session.sequence and "demo" in ws.sequence_names():
                self.sequence.set_ids(ws.load_sequence("demo"), "load the demo sequence")

    def _demo_failed(self, exc) -> None:
        self.progress.setVisible(False)
        self.session.error(f"Could not prepare the demo: {exc}")

    # ---- model ------------------------------------------------------------------
    def load_model(self, ckpt) -> None:
        if ckpt is None or self.session.ws_path is None:
            self.model_label.setText("model: none (train one or use File › Models…)")
            return
        self.model_loading = True
        self.model_label.setText(f"loading model {Path(ckpt).name}…")
        ws_path = self.session.ws_path
        run_for(self, load_model, str(ckpt), str(ws_path), self.settings.device,
                 on_done=lambda rec: self._model_loaded(ckpt, ws_path, rec),
                 on_error=lambda exc, tb: self._model_failed(ckpt, exc))

    def _model_loaded(self, ckpt, ws_path, rec) -> None:
        self.model_loading = False
        if ws_path != self.session.ws_path:
            return
        self.session.set_recommender(rec, ckpt)
        self.modelLoaded.emit(str(ckpt))

    def _model_failed(self, ckpt, exc) -> None:
        self.model_loading = False
        self.model_label.setText("model: failed to load")
        self.session.error(f"Could not load the model {ckpt}: {exc}")
        self.modelLoaded.emit(None)

    def _model_changed(self) -> None:
        rec, path = self.session.recommender, self.session.model_path
        if rec is None:
            self.model_label.setText("model: none")
        else:
            self.model_label.setText(f"model: {Path(path).name if path else '?'} · {model_device(rec)}")

    # ---- dialogs -------------------------------------------------------------------
    def import_wizard(self) -> None:
        from gui.import_wizard import ImportWizard
        wiz = ImportWizard(self.session, self.settings, self)
        wiz.imported.connect(lambda p: self.open_workspace(p) and self.load_model(newest_model(p)))
        wiz.setAttribute(Qt.WA_DeleteOnClose)
        wiz.open()
        self.wizard = wiz

    def models_dialog(self) -> None:
        try:
            from gui.models_dialog import ModelsDialog
        except ImportError as e:
            self.session.error(f"The models dialog is not available: {e}")
            return
        dlg = ModelsDialog(self.session, self)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        dlg.open()
        self.models = dlg

    # ---- life cycle --------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._panels_started:
            self._panels_started = True
            if not self._restored:
                QTimer.singleShot(0, self, lambda: window_layout.default_sizes(self))
            mods = [f"gui.{m}" for _, m, _ in LAZY_PANELS]
            run_for(self, import_modules, mods, on_done=lambda _: self._build_lazy_panels(),
                    on_error=lambda exc, tb: self._build_lazy_panels())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        old = event.oldSize().width()
        if self._panels_started and old > 0:
            QTimer.singleShot(0, self, lambda: window_layout.give_back_width(self, old))

    def _build_lazy_panels(self, k: int = 0) -> None:
        """On the GUI thread (widgets), one panel per event-loop turn, now that the imports are
        done (or failed: then a note in the dock says why)."""
        dock_name, module, cls = LAZY_PANELS[k]
        panel = _panel(module, cls, self.session, self)
        old = self.docks[dock_name].widget()
        self.docks[dock_name].setWidget(panel)
        old.deleteLater()
        setattr(self, dock_name.lower(), panel)
        if k + 1 < len(LAZY_PANELS):
            QTimer.singleShot(0, self, lambda: self._build_lazy_panels(k + 1))
        else:
            # the imports' objects (torch, pyqtgraph: hundreds of thousands) live as long as the
            # app: out of the collector's sight, full collections stop freezing the GUI thread
            gc.freeze()
            self.panels_ready = True
            self.panelsReady.emit()

    def closeEvent(self, event) -> None:
        # Stop a training run with SIGTERM so it leaves a resumable checkpoint.
        shutdown = getattr(self.training, "shutdown", None)
        if shutdown is not None:
            shutdown()
        if self.remember_layout:
            self.settings.save_window(self)
        super().closeEvent(event)


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    parser = argparse.ArgumentParser(prog="msm4sr-studio", description="MSM4SR Studio desktop app")
    parser.add_argument("workspace", nargs="?", help="workspace folder (default: the built-in demo)")
    parser.add_argument("--model", help="checkpoint folder to load (default: the newest in WS/models)")
    parser.add_argument("--screenshot", metavar="FILE",
                        help="render the window with the demo sequence to FILE (PNG) and exit")
    parser.add_argument("--timing", action="store_true", help="print launch timings as JSON on stderr")
    args = parser.parse_args(argv)

    from gui.xcb_check import check as xcb_libraries_present
    if QApplication.instance() is None and not xcb_libraries_present():
        return 3        # Qt would abort with "could not load the Qt platform plugin xcb"
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MSM4SR Studio")
    app.setOrganizationName("MSM4SR")
    window = MainWindow(remember_layout=not args.screenshot)
    install_excepthook(window)
    if args.screenshot:
        window.resize(1600, 1000)
        Screenshot(window, args.screenshot)
    window.show()
    shown = time.perf_counter() - t0
    shown_wall = time.time()

    def start():
        if args.workspace:
            if window.open_workspace(args.workspace):
                window.load_model(args.model or newest_model(args.workspace))
        else:
            window.open_demo(args.model)
    QTimer.singleShot(0, start)
    if args.timing:
        print(json.dumps({"launch_to_shown_s": round(shown, 3), "shown_wall": shown_wall}),
              file=sys.stderr, flush=True)
    rc = app.exec()
    from gui.workers import wait_all
    if not wait_all(5000):
        # a long job (a feature build) is still running: its writes are atomic, so leave now
        # rather than keep an invisible process alive until it ends
        print("msm4sr-studio: background work abandoned at exit", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
