"""Help > About: the versions `msm4sr --version` prints, gathered on a worker (torch import)."""
from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from gui.workers import run_for


def add_help_menu(win) -> None:
    m = win.menuBar().addMenu("&Help")
    win.act_about = m.addAction("&About MSM4SR Studio…")
    win.act_about.triggered.connect(lambda: show_about(win))


def show_about(win) -> QMessageBox:
    """A box that says "Reading versions…" at once and fills in when the worker is done."""
    from core.versions import format_versions, versions
    box = QMessageBox(QMessageBox.Information, "About MSM4SR Studio", "Reading versions…",
                      QMessageBox.Ok, win)
    box.setObjectName("about")
    win.about_box = box

    def done(v):
        box.setText("MSM4SR Studio: multimodal pre-training for sequential recommendation\n\n"
                    + format_versions(v))
    run_for(box, versions, on_done=done,
            on_error=lambda e: box.setText(f"Could not read the versions: {e}"))
    box.open()
    return box
