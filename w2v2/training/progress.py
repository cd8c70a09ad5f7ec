"""Progress that suits where it is read: a tqdm bar on a terminal, plain periodic lines in a log.

Design choices:
- `progress_bar(...)` is the one constructor every command uses (training, prediction, pretraining, the
  synthetic corpus, the bench); it takes tqdm's usual arguments;
- on a terminal it is tqdm as before; where stderr is not a terminal (a log file, CI, `nohup`), tqdm's
  carriage-return redraws become thousands of lines, so a `LogProgress` writes one whole line every
  `LOG_INTERVAL` seconds (and one when long work ends) instead;
- in a log, one bar speaks for a command: a bar opened while another is running (an epoch inside "all
  members", the batches of one member's predictions) stays silent, and the outer one says how far the
  whole command is.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between two lines of one bar in a log


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class LogProgress:
    """The part of tqdm's interface our commands use (iteration, update, set_postfix, write, close, `with`),
    written as plain lines: `desc: n/total unit (p%), m:ss elapsed, about m:ss left, postfix`."""

    open_bars: weakref.WeakSet[LogProgress] = weakref.WeakSet()  # bars not closed yet: only the outermost writes

    def __init__(self, iterable: Iterable | None = None, desc: str | None = None, total: float | None = None,
                 unit: str = "it", initial: float = 0, disable: bool | None = False, interval: float | None = None,
                 file: Any = None, **_: Any) -> None:
        self.iterable, self.desc, self.unit = iterable, desc or "progress", unit
        self.interval = LOG_INTERVAL if interval is None else interval
        self.n = initial
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.file, self.postfix, self.lines = total, file, "", 0
        self.silent = bool(disable) or len(LogProgress.open_bars) > 0
        self.closed = False
        LogProgress.open_bars.add(self)  # a bar dropped unclosed leaves with the garbage collector
        self.start = self.last = time.monotonic()
        self.first = initial

    def __iter__(self) -> Iterator:
        assert self.iterable is not None, "LogProgress over no iterable: call update()"
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        if not self.silent and time.monotonic() - self.last >= self.interval:
            self.line()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def write(self, text: str) -> None:
        print(text, flush=True)

    def line(self) -> None:
        now = time.monotonic()
        self.last, elapsed, done = now, now - self.start, self.n - self.first
        parts = [f"{self.desc}: {self.n:g}" + (f"/{self.total:g}" if self.total else "") + f" {self.unit}"
                 + (f" ({self.n / self.total:.0%})" if self.total else ""), f"{duration(elapsed)} elapsed"]
        if self.total and done >= 0.05 * self.total and self.n < self.total:  # before: start-up, not a rate
            parts.append(f"about {duration(elapsed / done * (self.total - self.n))} left")
        print(", ".join(parts + ([self.postfix] if self.postfix else [])), file=self.file or sys.stderr, flush=True)
        self.lines += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        LogProgress.open_bars.discard(self)
        if not self.silent and self.lines:  # long work said how far it was: say that it ended
            self.line()


@contextlib.contextmanager
def no_progress() -> Iterator[None]:
    """Every bar silenced inside (W2V2_PROGRESS=off), e.g. for work that is only being timed."""
    before = os.environ.get("W2V2_PROGRESS")
    os.environ["W2V2_PROGRESS"] = "off"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("W2V2_PROGRESS", None)
        else:
            os.environ["W2V2_PROGRESS"] = before


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> Any:
    """A tqdm bar on a terminal, a `LogProgress` elsewhere; tqdm's arguments (desc, total, unit, disable,
    leave, initial, ...). disable=True, or W2V2_PROGRESS=off in the environment, silences it either way."""
    if kwargs.get("disable") is None:  # tqdm's "not on a terminal": here, plain lines instead
        kwargs["disable"] = False
    if os.environ.get("W2V2_PROGRESS") == "off":  # a worker process whose parent's bar speaks for it
        kwargs["disable"] = True
    if sys.stderr.isatty():
        return tqdm(iterable, **kwargs)
    return LogProgress(iterable, **kwargs)
