"""Progress reporting shared by the command line (tqdm bars) and the app (callbacks).

A progress function is called as `progress(stage, done, total)`; `total` may be 0
when unknown. Long loops call it every batch; it must be cheap.
"""
from __future__ import annotations

import sys
from typing import Callable, Protocol


class Progress(Protocol):
    def __call__(self, stage: str, done: int, total: int) -> None: ...


def silent(stage: str, done: int, total: int) -> None:
    """A progress function that reports nothing."""


class TerminalProgress:
    """One tqdm bar per stage, on stderr; quiet when stderr is not a terminal unless forced."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
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
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


ProgressFn = Callable[[str, int, int], None]
