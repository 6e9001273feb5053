"""Help > About shows the same versions as `msm4sr --version`, read off the GUI thread."""
from PySide6.QtWidgets import QMainWindow

from core.versions import versions
from gui.about import add_help_menu


def test_about_box_lists_the_versions(qtbot):
    win = QMainWindow()
    qtbot.addWidget(win)
    add_help_menu(win)
    assert [a.text() for a in win.menuBar().actions()] == ["&Help"]
    win.act_about.trigger()
    box = win.about_box
    assert box.text() == "Reading versions…"          # shown before the worker is done
    qtbot.waitUntil(lambda: "torch:" in box.text(), timeout=60_000)
    want = versions()
    for key in ("msm4sr-studio", "torch", "device", "text model"):
        assert f"{key}: {want[key]}" in box.text()
    box.close()
