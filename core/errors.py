"""Errors a user can act on. The command line prints them without a traceback."""
from __future__ import annotations


class StudioError(Exception):
    """Base for every error caused by input, not by a bug."""


class InputError(StudioError):
    """Bad input data. Names the file and, where known, the line or item."""

    def __init__(self, message: str, path=None, line: int | None = None, item: str | None = None):
        self.path, self.line, self.item = path, line, item
        where = []
        if path is not None:
            where.append(f"{path}" + (f":{line}" if line is not None else ""))
        if item is not None:
            where.append(f"item {item!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class WorkspaceError(StudioError):
    """A workspace that is missing, locked, or of an unknown schema."""


class CheckpointError(StudioError):
    """A checkpoint that is corrupt, crafted, or does not match the workspace."""
