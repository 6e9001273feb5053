"""Thumbnails decoded off the GUI thread, with an LRU cache and placeholders.

`ThumbnailCache.get(path)` answers at once: the cached pixmap, or a placeholder
while the image is decoded on a worker (core's safe loader, reduced-scale JPEG
decoding, so a large poster is never decoded at full size). `ready(path)` tells
views to repaint.
A missing, corrupt or unreadable file becomes the "broken" placeholder; it never raises.
"""
from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap

from core.features.images import load_thumbnail
from gui.workers import run_for

MAX_PENDING = 400          # requests beyond this (scrolled past long ago) are dropped


def decode_image(path: str, width: int, height: int) -> QImage:
    """Runs on a worker. The image scaled to fit width x height; raises InputError on failure.

    Decoding goes through core's safe loader (root confinement, content check,
    Pillow's pixel limit read from the header) rather than QImageReader, which
    follows symlinks anywhere and allocates whatever size a header claims.
    """
    im = load_thumbnail(path, width, height)
    data = im.tobytes()
    # copy(): the QImage must own its pixels once `data` goes away
    return QImage(data, im.width, im.height, 3 * im.width, QImage.Format_RGB888).copy()


def placeholder(size: QSize, kind: str) -> QPixmap:
    """'loading', 'broken' or 'none' (item without an image)."""
    pm = QPixmap(size)
    pm.fill(Qt.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    rect = pm.rect().adjusted(2, 2, -2, -2)
    p.setPen(QPen(QColor("#b8bcc4"), 1, Qt.DashLine if kind == "loading" else Qt.SolidLine))
    p.setBrush(QColor("#eef0f3") if kind != "broken" else QColor("#f6e9e9"))
    p.drawRoundedRect(rect, 6, 6)
    f = QFont()
    f.setPointSize(8)
    p.setFont(f)
    small = size.width() < 80          # no room for words in a list icon
    if kind == "broken":
        p.setPen(QPen(QColor("#c0392b"), 2))
        c = rect.center()
        r = 5 if small else 12
        p.drawLine(c.x() - r, c.y() - r, c.x() + r, c.y() + r)
        p.drawLine(c.x() - r, c.y() + r, c.x() + r, c.y() - r)
        if not small:
            p.drawText(rect.adjusted(0, 0, 0, -8), Qt.AlignHCenter | Qt.AlignBottom, "broken image")
    elif not small:
        p.setPen(QColor("#8a9099"))
        p.drawText(rect, Qt.AlignCenter, "loading…" if kind == "loading" else "no image")
    p.end()
    return pm


class ThumbnailCache(QObject):
    ready = Signal(str)      # a path whose thumbnail (or broken placeholder) is now cached

    def __init__(self, size: QSize = QSize(112, 140), capacity: int = 3000,
                 max_in_flight: int = 2, parent=None):
        super().__init__(parent)
        self.size = QSize(size)
        self.capacity = capacity
        self.max_in_flight = max_in_flight
        self._cache: OrderedDict[str, QPixmap] = OrderedDict()
        self._broken: set[str] = set()
        self._pending: OrderedDict[str, None] = OrderedDict()   # newest last; served newest first
        self._in_flight: set[str] = set()
        self._generation = 0
        self.loading = placeholder(self.size, "loading")
        self.broken = placeholder(self.size, "broken")
        self.none = placeholder(self.size, "none")
        # one repaint per burst of arrivals, not one per image
        self._notify = QTimer(self, singleShot=True, interval=30)
        self._notify.timeout.connect(self._flush)
        self._arrived: list[str] = []

    def get(self, path: str | None) -> QPixmap:
        if not path:
            return self.none
        pm = self._cache.get(path)
        if pm is not None:
            self._cache.move_to_end(path)
            return pm
        if path in self._broken:
            return self.broken
        self.request(path)
        return self.loading

    def is_broken(self, path: str) -> bool:
        return path in self._broken

    def cached(self, path: str) -> bool:
        return path in self._cache or path in self._broken

    def request(self, path: str) -> None:
        if path in self._in_flight:
            return
        self._pending.pop(path, None)
        self._pending[path] = None
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        self._pump()

    def clear(self) -> None:
        self._generation += 1       # results of older requests are dropped
        self._cache.clear()
        self._broken.clear()
        self._pending.clear()
        self._in_flight.clear()

    def _pump(self) -> None:
        while self._pending and len(self._in_flight) < self.max_in_flight:
            path, _ = self._pending.popitem(last=True)   # most recently asked first: what is on screen
            self._in_flight.add(path)
            gen = self._generation
            run_for(self, decode_image, path, self.size.width(), self.size.height(),
                     on_done=lambda img, p=path, g=gen: self._done(p, g, img),
                     on_error=lambda exc, tb, p=path, g=gen: self._done(p, g, None))

    def _done(self, path: str, gen: int, image: QImage | None) -> None:
        if gen != self._generation:
            return
        self._in_flight.discard(path)
        if image is None:
            self._broken.add(path)
        else:
            self._cache[path] = QPixmap.fromImage(image)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        self._arrived.append(path)
        if not self._notify.isActive():
            self._notify.start()
        self._pump()

    def _flush(self) -> None:
        arrived, self._arrived = self._arrived, []
        for p in arrived:
            self.ready.emit(p)

    def idle(self) -> bool:
        return not self._pending and not self._in_flight
