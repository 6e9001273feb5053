"""Shared app state. Panels read it and listen to its signals, so all views update together."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal


class Session(QObject):
    workspaceChanged = Signal()          # a workspace was opened (self.ws_path)
    sequenceChanged = Signal(list)       # the sequence being built: item ids, oldest first
    selectionChanged = Signal(str)       # the item being inspected
    modelChanged = Signal()              # self.recommender was replaced (may be None)
    itemsChanged = Signal()              # items were added or deleted (new cold-start items)
    message = Signal(str, str)           # level ('info'|'warning'|'error'), text for the user

    def __init__(self, parent=None):
        super().__init__(parent)
        self.ws_path: Path | None = None
        self.ws = None                   # core.workspace.Workspace, opened on the GUI thread (reads only)
        self.sequence: list[str] = []
        self.selected: str | None = None
        self.recommender = None          # core.recommend.Recommender, or None until loaded
        self.model_path: Path | None = None

    def open_workspace(self, path) -> None:
        from core.workspace import Workspace
        ws = Workspace.open(path)
        if self.ws is not None:
            self.ws.close()
        self.ws, self.ws_path = ws, Path(path)
        self.selected = None
        # Clear first, so a workspaceChanged handler may set a new sequence or model.
        self.set_sequence([])
        if self.recommender is not None:
            self.set_recommender(None)   # a model belongs to the workspace it was loaded for
        self.workspaceChanged.emit()

    def set_sequence(self, item_ids: list[str]) -> None:
        if list(item_ids) != self.sequence:
            self.sequence = list(item_ids)
            self.sequenceChanged.emit(list(self.sequence))

    def select(self, item_id: str | None) -> None:
        if item_id and item_id != self.selected:
            self.selected = item_id
            self.selectionChanged.emit(item_id)

    def set_recommender(self, recommender, path=None) -> None:
        self.recommender = recommender
        self.model_path = Path(path) if path else None
        self.modelChanged.emit()

    def info(self, text: str) -> None:
        self.message.emit("info", text)

    def warn(self, text: str) -> None:
        self.message.emit("warning", text)

    def error(self, text: str) -> None:
        self.message.emit("error", text)
