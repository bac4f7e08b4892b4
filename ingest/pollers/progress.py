"""Progress of a first (backfill) pass: a bar on a terminal, a line per tenth elsewhere."""

import logging
import sys
import time
from typing import Protocol, TextIO

__all__ = ["LogProgress", "Progress", "TerminalProgress", "progress_for"]

logger = logging.getLogger(__name__)


class Progress(Protocol):
    """Told how many (subaccount, resource) pulls the pass has, then of each one done."""

    def begin(self, total: int) -> None: ...

    def advance(self) -> None: ...

    def end(self) -> None: ...


class LogProgress:
    """Logs the backfill's progress every 10 %."""

    def __init__(self) -> None:
        self._total = 0
        self._done = 0
        self._started = 0.0

    def begin(self, total: int) -> None:
        self._total, self._done, self._started = total, 0, time.monotonic()
        logger.info("backfill: %d subaccount pulls to do", total)

    def advance(self) -> None:
        self._done += 1
        if self._total and self._done * 10 // self._total > (self._done - 1) * 10 // self._total:
            logger.info("backfill: %d/%d pulls done", self._done, self._total)

    def end(self) -> None:
        logger.info("backfill done in %.1f s", time.monotonic() - self._started)


class TerminalProgress:
    """A one-line bar, redrawn in place: ``backfill [#####.....] 50/100  12 s``."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._total = 0
        self._done = 0
        self._started = 0.0

    def begin(self, total: int) -> None:
        self._total, self._done, self._started = total, 0, time.monotonic()
        self._draw()

    def advance(self) -> None:
        self._done += 1
        self._draw()

    def end(self) -> None:
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self) -> None:
        filled = self._width * self._done // max(self._total, 1)
        bar = "#" * filled + "." * (self._width - filled)
        elapsed = time.monotonic() - self._started
        self._stream.write(f"\rbackfill [{bar}] {self._done}/{self._total}  {elapsed:.0f} s")
        self._stream.flush()


def progress_for(stream: TextIO | None = None) -> Progress:
    """A bar when ``stream`` (default stderr) is a terminal, else log lines."""
    stream = stream or sys.stderr
    return TerminalProgress(stream) if stream.isatty() else LogProgress()
