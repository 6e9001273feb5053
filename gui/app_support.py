"""Helpers of the main window that need no window: finding and loading models and the demo
(run on workers), the lazily imported panels, shortcuts, and the excepthook."""
from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignCenter)
    label.setStyleSheet("color: #9ca3af;")
    return label


def _panel(module: str, cls: str, session, parent):
    """H4b's live panels; a note in their place only when one is missing or broken in a checkout."""
    try:
        mod = importlib.import_module(f"gui.{module}")
        return getattr(mod, cls)(session, parent)
    except Exception as e:  # noqa: BLE001 - one broken panel must not stop the app
        traceback.print_exc()
        return _note(f"{cls} not available:\n{e}")


def import_modules(names: list[str]) -> list[str]:
    """Worker: import modules so that building their widgets later is quick."""
    for name in names:
        importlib.import_module(name)
    return names


def newest_model(ws_path) -> Path | None:
    """The most recently written checkpoint folder under WS/models (manifest.json inside)."""
    found = sorted((p.stat().st_mtime, p.parent) for p in Path(ws_path, "models").glob("*/manifest.json"))
    return found[-1][1] if found else None


def is_demo(ws) -> bool:
    """The demo workspace carries meta "demo" (core.demo writes it when it builds the demo)."""
    return bool(ws.get_meta("demo", False))


def demo_workspace(progress=None) -> Path:
    """Worker: build (first time) or find the built-in demo workspace."""
    try:
        from core.demo import ensure_demo_workspace
    except ImportError as e:
        raise RuntimeError("the built-in demo is not available in this installation "
                           f"({e}); open a workspace with File > Open workspace…") from None
    return Path(ensure_demo_workspace(progress=progress))


def load_model(ckpt, ws_path, device: str = "auto"):
    """Worker: open the workspace on this thread and load a checkpoint on the chosen device."""
    from core.recommend import Recommender
    from core.workspace import Workspace
    return Recommender.load(Path(ckpt), Workspace.open(ws_path), device=device or "auto")


def model_device(rec) -> str:
    return str(getattr(rec, "device", "cpu"))


def unique_keys(*lists) -> list[QKeySequence]:
    """Each key sequence once, in order. Qt calls a key bound twice to one action
    'ambiguous' and does nothing (GNOME's platform Redo is Ctrl+Shift+Z itself)."""
    out, seen = [], set()
    for keys in lists:
        for k in keys:
            if not k.isEmpty() and k.toString() not in seen:
                seen.add(k.toString())
                out.append(k)
    return out


def install_excepthook(window) -> None:
    """An unexpected error shows in the window (and still goes to stderr), never a silent dead UI."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        try:
            window.session.error(f"Unexpected error: {etype.__name__}: {value} "
                                 "(details on the console; please report it)")
        except Exception:  # noqa: BLE001 - the window itself may be gone
            pass
        previous(etype, value, tb)

    sys.excepthook = hook
