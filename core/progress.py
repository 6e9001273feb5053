"""Progress reporting shared by the command line (tqdm bars or lines) and the app (callbacks).

A progress function is called as `progress(stage, done, total)`; `total` may be 0
when unknown. Long loops call it every batch; it must be cheap.

On a terminal the command line draws a bar. Anywhere else (a log, a pipe, CI) it prints
plain lines: one when a stage starts and ends, and one at least every
MSM4SR_PROGRESS_SECONDS seconds (default 10) in between, repeated by a ticker thread when
the work itself is slower than that, so a long command is never silent.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, Protocol

from core.errors import StudioError

INTERVAL_ENV = "MSM4SR_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 10.0


class Progress(Protocol):
    def __call__(self, stage: str, done: int, total: int) -> None: ...


def silent(stage: str, done: int, total: int) -> None:
    """A progress function that reports nothing."""


def line_interval() -> float:
    """Seconds between progress lines off a terminal: MSM4SR_PROGRESS_SECONDS, default 10
    (0 prints a line at every update)."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:   # also rejects nan
        raise StudioError(f"{INTERVAL_ENV}={raw!r}: expected a number of seconds >= 0")
    return value


class LineProgress:
    """Progress as plain lines on a stream, for when there is no terminal to draw a bar on."""

    def __init__(self, interval: float | None = None, stream=None):
        self.interval = line_interval() if interval is None else float(interval)
        self.stream = stream
        self._lock = threading.Lock()
        self._state: tuple | None = None       # (stage, done, total, detail, stage start)
        self._last = 0.0                       # when the last line was printed
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, stage: str, done: int, total: int, detail: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            new = self._state is None or self._state[0] != stage
            repeat = not new and self._state[1:3] == (done, total)   # e.g. a stage's end, twice
            started = now if new else self._state[4]
            self._state = (stage, done, total, detail, started)
            finished = bool(total) and done >= total
            if new or (finished and not repeat) or now - self._last >= self.interval:
                self._print(now)
        if self._ticker is None and self.interval > 0:
            self._ticker = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
            self._ticker.start()

    def _print(self, now: float, still: bool = False) -> None:
        stage, done, total, detail, started = self._state
        count = f"{done:,}/{total:,} ({done / total:.0%})" if total else f"{done:,}"
        text = f"{stage}: {count}, {now - started:.0f}s" + (f", {detail}" if detail else "")
        if still:   # the work between updates (or after a stage's last one) is slow
            text += " (still working)"
        print(text, file=self.stream or sys.stderr, flush=True)
        self._last = now

    def _tick(self) -> None:
        while not self._stop.wait(self.interval / 2):
            now = time.monotonic()
            with self._lock:
                if self._state is not None and now - self._last >= self.interval:
                    self._print(now, still=True)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        self._stop.clear()
        self._state = None


class TerminalProgress:
    """One tqdm bar per stage on stderr when it is a terminal, else progress lines
    (LineProgress); `enabled=False` reports nothing, `enabled=True` forces the bars."""

    def __init__(self, enabled: bool | None = None, interval: float | None = None):
        tty = sys.stderr.isatty()
        self.enabled = True if enabled is None else enabled
        self.lines = LineProgress(interval) if enabled is None and not tty else None
        self._bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.lines is not None:
            self.lines(stage, done, total)
            return
        from tqdm import tqdm
        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total or None, desc=stage, unit="it",
                                           leave=True, file=sys.stderr)
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()
        if total and done >= total:
            bar.close()
            self._bars.pop(stage, None)

    def close(self) -> None:
        if self.lines is not None:
            self.lines.close()
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


ProgressFn = Callable[[str, int, int], None]
