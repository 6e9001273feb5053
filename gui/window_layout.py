"""Dock sizes of the main window: first-run defaults that fit a 1024 px screen, and the
inspector given back its width when the window grows (Qt hands all new width to the
centre, so a side dock squeezed on a small window otherwise stays squeezed)."""
from __future__ import annotations

from PySide6.QtCore import Qt

SIDE_MIN = 220          # the inspector and the sequence column never get narrower than this


def side_width(window_width: int) -> int:
    """What each side column should have: about a quarter of the window, 240 to 360 px."""
    return max(240, min(360, int(window_width * 0.24)))


def default_sizes(window) -> None:
    """First run: side columns by the window's width, the catalog the middle, the attention
    maps some height."""
    w, h = window.width(), window.height()
    side = side_width(w)
    docks = window.docks
    window.resizeDocks([docks["Sequence"], docks["Inspector"]], [side, side], Qt.Horizontal)
    window.resizeDocks([docks["Sequence"], docks["Recommendations"]], [h // 2, h // 2], Qt.Vertical)
    window.resizeDocks([docks["Attention"]], [int(h * 0.36)], Qt.Vertical)


def give_back_width(window, old_width: int) -> bool:
    """After the window grew: widen a squeezed inspector towards its share, taking only the
    new width (a width the user chose on a large window is left alone). Returns whether it
    changed anything."""
    dock = window.docks["Inspector"]
    if window.width() <= old_width or dock.isFloating() or not dock.isVisible():
        return False
    want = side_width(window.width())
    have = dock.width()
    if have >= want:
        return False
    grow = min(want - have, window.width() - old_width)
    window.resizeDocks([dock], [have + grow], Qt.Horizontal)
    return True
