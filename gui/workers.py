"""The only place the app makes threads.

`run_task(fn, *args, on_done=..., on_error=..., on_progress=...)` runs `fn` on the
global QThreadPool. If `fn` accepts a `progress` keyword it gets a thread-safe
progress function `progress(stage, done, total)`. Callbacks run on the GUI thread.
Workers must open their own Workspace connection (SQLite connections are per thread).
"""
from __future__ import annotations

import inspect
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

_live: set["Task"] = set()  # keep tasks (and their signal objects) alive until they finish


class _Signals(QObject):
    done = Signal(object)
    error = Signal(object, str)      # exception, formatted traceback
    progress = Signal(str, int, int)


class Task(QRunnable):
    def __init__(self, fn: Callable, args: tuple, kwargs: dict):
        super().__init__()
        self.setAutoDelete(False)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = _Signals()
        self.cancelled = False

    def cancel(self) -> None:
        """Ask politely: callbacks are dropped; the function itself runs to its end."""
        self.cancelled = True

    def run(self) -> None:
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as e:  # noqa: BLE001 - reported to the GUI, never swallowed
            if not self.cancelled:
                self.signals.error.emit(e, traceback.format_exc())
        else:
            if not self.cancelled:
                self.signals.done.emit(result)


def _accepts_progress(fn: Callable) -> bool:
    try:
        return "progress" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


MIN_THREADS = 8


def run_task(fn: Callable, *args: Any, on_done: Callable | None = None,
             on_error: Callable | None = None, on_progress: Callable | None = None,
             **kwargs: Any) -> Task:
    task = Task(fn, args, kwargs)
    if _accepts_progress(fn) and "progress" not in kwargs:
        task.kwargs["progress"] = lambda stage, done, total: task.signals.progress.emit(stage, done, total)
    if on_done:
        task.signals.done.connect(on_done)
    if on_error:
        task.signals.error.connect(on_error)
    if on_progress:
        task.signals.progress.connect(on_progress)
    task.signals.done.connect(lambda *_: _live.discard(task))
    task.signals.error.connect(lambda *_: _live.discard(task))
    _live.add(task)
    pool = QThreadPool.globalInstance()
    # the default is one thread a core: on 2 cores a minute-long job (the item map's UMAP, the
    # CLIP check) and one more would make every short one (listing models, a thumbnail) wait
    if pool.maxThreadCount() < MIN_THREADS:
        pool.setMaxThreadCount(MIN_THREADS)
    pool.start(task)
    return task


def wait_all(msecs: int = 30000) -> bool:
    """For tests and shutdown: wait for every running task."""
    return QThreadPool.globalInstance().waitForDone(msecs)


def guarded(owner, fn: Callable) -> Callable:
    """`fn`, but a no-op once the QObject `owner` is deleted.

    Worker results arrive later through lambdas that Qt cannot tie to a receiver;
    a panel closed (or a test finished) meanwhile must not be touched.
    """
    import shiboken6

    def call(*args):
        if shiboken6.isValid(owner):
            return fn(*args)
    return call


def run_for(owner, fn: Callable, *args: Any, on_done: Callable | None = None,
            on_error: Callable | None = None, on_progress: Callable | None = None,
            **kwargs: Any) -> Task:
    """`run_task` whose callbacks are dropped once `owner` is deleted."""
    wrap = lambda cb: guarded(owner, cb) if cb is not None else None  # noqa: E731
    return run_task(fn, *args, on_done=wrap(on_done), on_error=wrap(on_error),
                    on_progress=wrap(on_progress), **kwargs)
