"""MSM4SR Studio desktop app (PySide6). Panels call `core` only through gui.workers."""
