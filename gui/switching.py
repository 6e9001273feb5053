"""Leaving a workspace for another: never under a running training run, and never dropping
an unsaved sequence without asking. `window` is the MainWindow (its ask() shows the question)."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import QMessageBox


def may_leave_workspace(window, path) -> bool:
    """Before another workspace replaces this one: never under a running training run,
    and never dropping an unsaved sequence without asking."""
    if window.session.ws_path is None:
        return True
    running = getattr(window.training, "state", "idle") != "idle"
    if running:
        window.ask(QMessageBox(QMessageBox.Warning, "Training is running",
                             f"A training run on {window.session.ws_path.name} is still going. Cancel it in "
                             "the Training panel first (it keeps a resumable checkpoint), then open "
                             f"{Path(path).name}.", QMessageBox.Ok, window))
        return False
    seq = window.session.sequence
    if not seq or seq == _saved_sequence(window):
        return True
    box = QMessageBox(QMessageBox.Question, "Keep the sequence?",
                      f"The sequence of {len(seq)} item{'' if len(seq) == 1 else 's'} belongs to "
                      f"{window.session.ws_path.name} and is cleared when {Path(path).name} opens.",
                      QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, window)
    box.button(QMessageBox.Save).setText("Save it, then switch")
    box.button(QMessageBox.Discard).setText("Switch without saving")
    box.setDefaultButton(QMessageBox.Save)
    answer = window.ask(box)
    if answer == QMessageBox.Save:
        name = time.strftime("before switching %Y-%m-%d %H:%M:%S")
        from core.workspace import Workspace
        with Workspace.open(window.session.ws_path) as ws:    # one small row
            ws.save_sequence(name, seq)
        window.session.info(f"saved the sequence as “{name}” in {window.session.ws_path.name}")
        return True
    return answer == QMessageBox.Discard

def _saved_sequence(window) -> list[str] | None:
    """The demo's own sequence (nothing is lost when it is the one shown)."""
    ws = window.session.ws
    return ws.load_sequence("demo") if ws is not None and "demo" in ws.sequence_names() else None
