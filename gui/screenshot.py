"""`msm4sr-studio --screenshot FILE`: the demo sequence and its recommendations, rendered to a PNG."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication


def demo_sequence(ws) -> list[str]:
    """The saved 'demo' sequence, else the first 5 items of the first user with at least 5."""
    if "demo" in ws.sequence_names():
        return ws.load_sequence("demo")
    row = ws.db.execute("SELECT user FROM interactions GROUP BY user HAVING COUNT(*) >= 5 "
                        "ORDER BY user LIMIT 1").fetchone()
    if row is None:
        return [r[0] for r in ws.db.execute("SELECT id FROM items ORDER BY id LIMIT 5")]
    return [r[0] for r in ws.db.execute(
        "SELECT item FROM interactions WHERE user=? ORDER BY ts, pos LIMIT 5", (row[0],))]


class Screenshot:
    """--screenshot: show the demo sequence and its recommendations, save a PNG, quit."""

    def __init__(self, window, path: str, timeout_s: float = 90.0):
        self.window, self.path = window, Path(path)
        self.done = False
        window.workspaceOpened.connect(self._opened)
        recs = window.recommendations
        if hasattr(recs, "resultsShown"):
            recs.resultsShown.connect(lambda *_: QTimer.singleShot(800, self.shoot))
        window.modelLoaded.connect(lambda p: p is None and QTimer.singleShot(500, self.shoot))
        QTimer.singleShot(int(timeout_s * 1000), self.shoot)

    def _opened(self, _path) -> None:
        # after Session.open_workspace has finished announcing the (empty) sequence
        QTimer.singleShot(0, self._show_demo_sequence)

    def _show_demo_sequence(self) -> None:
        ws = self.window.session.ws
        seq = demo_sequence(ws)
        self.window.session.set_sequence(seq)
        if seq:
            self.window.session.select(seq[-1])
        if self.window.session.recommender is None and not self.window.model_loading:
            QTimer.singleShot(3000, self.shoot)      # no model to wait for

    def _images_pending(self) -> bool:
        w = self.window
        caches = [getattr(p, "thumbs", None) for p in (w.catalog, w.sequence, w.recommendations)]
        return any(c is not None and not c.idle() for c in caches) or w.inspector.image.text() == "loading image…"

    def shoot(self, tries: int = 0) -> None:
        if self.done:
            return
        if tries < 20 and self._images_pending():      # thumbnails still decoding: wait up to 5 s
            QTimer.singleShot(250, lambda: self.shoot(tries + 1))
            return
        self.done = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ok = self.window.grab().save(str(self.path))
        print(f"screenshot {'saved to' if ok else 'FAILED:'} {self.path}", file=sys.stderr)
        QApplication.instance().exit(0 if ok else 1)
