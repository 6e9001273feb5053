"""Calling the loaded model from the GUI: one call at a time, newest request wins.

Recommender objects are not thread-safe, and several panels (recommendations,
attention) ask the same model, so every call holds that model's lock on the
worker thread (never on the GUI thread). `LatestRequest` debounces edits, keeps
one request in flight per panel and drops results that a newer edit made stale.
"""
from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path
from typing import Callable

import shiboken6
from PySide6.QtCore import QObject, QTimer, Signal

from gui.workers import run_task

_locks: "weakref.WeakKeyDictionary[object, threading.Lock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def model_lock(rec) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(rec)
        if lock is None:
            lock = _locks[rec] = threading.Lock()
        return lock


def call_model(rec, method: str, *args, **kwargs):
    """Run `rec.method(...)` holding the model's lock. Call on a worker only."""
    with model_lock(rec):
        return getattr(rec, method)(*args, **kwargs)


def load_recommender(ckpt_dir, ws_path):
    """Worker function: open the workspace on this thread and load a checkpoint.

    Raises core.errors.CheckpointError (with the reason) for a refused checkpoint.
    """
    from core.recommend import Recommender
    from core.workspace import Workspace
    ws = Workspace.open(ws_path)
    return Recommender.load(Path(ckpt_dir), ws)


class LatestRequest(QObject):
    """Debounced worker calls where only the newest request's result is shown.

    `build()` runs on the GUI thread when the debounce timer fires and returns
    `(fn, args, kwargs)` to run on a worker, or None when there is nothing to ask.
    `result(value, latency_ms)` / `failed(exc, tb)` fire on the GUI thread for the
    newest request only; latency is measured from the last `request()` call.
    """
    result = Signal(object, float)
    failed = Signal(object, str)

    def __init__(self, build: Callable, delay_ms: int = 50, parent=None):
        super().__init__(parent)
        self._build = build
        self._timer = QTimer(self, singleShot=True, interval=delay_ms)
        self._timer.timeout.connect(self._fire)
        self._task = None           # the request in flight, if any
        self._stale = False         # a newer request came while one was in flight
        self._t_edit: float | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None or self._timer.isActive()

    def request(self) -> None:
        self._t_edit = time.perf_counter()
        if self._task is not None:
            self._stale = True
        self._timer.start()

    def _fire(self) -> None:
        if self._task is not None:          # serialise: wait for the one in flight
            self._stale = True
            return
        self._stale = False
        job = self._build()
        if job is None:
            return
        fn, args, kwargs = job
        task = None

        def done(value):
            self._finish(task, value, None)

        def error(exc, tb):
            self._finish(task, None, (exc, tb))

        task = run_task(fn, *args, on_done=done, on_error=error, **kwargs)
        self._task = task

    def _finish(self, task, value, err) -> None:
        if not shiboken6.isValid(self) or task is not self._task:   # panel gone, or cancelled
            return
        self._task = None
        if self._stale:                     # an edit came meanwhile: drop this one, ask again
            if not self._timer.isActive():  # (else the debounce timer will ask)
                self._fire()
            return
        latency = (time.perf_counter() - self._t_edit) * 1000 if self._t_edit else 0.0
        if err is not None:
            self.failed.emit(*err)
        else:
            self.result.emit(value, latency)

    def cancel(self) -> None:
        """Forget the request in flight and any pending one (e.g. the model went away)."""
        self._timer.stop()
        if self._task is not None:
            self._task.cancel()
        self._task, self._stale = None, False
