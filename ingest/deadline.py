"""One deadline shared by many concurrent awaits, kept by one periodic timer.

The receiver gives every publish the same deadline. ``asyncio.timeout`` arms and cancels a
timer per call, which on uvloop costs about 5 us, a tenth of a whole status callback; here one
task wakes every ``seconds / 20`` and cancels the awaits that started more than ``seconds``
ago, so a late await ends between ``seconds`` and ``1.05 * seconds`` after it started.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

__all__ = ["SharedDeadline"]


class SharedDeadline:
    """Runs awaits under one deadline; see the module docstring."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick = max(seconds / 20, 0.005)
        # Insertion order is start order: the oldest awaits come first.
        self._running: dict[asyncio.Task[Any], float] = {}
        self._late: set[asyncio.Task[Any]] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        if self._keeper is None:
            self._loop = asyncio.get_running_loop()
            self._keeper = self._loop.create_task(self._keep(), name="shared-deadline")

    async def stop(self) -> None:
        """Stop keeping time (awaits still running then have no deadline); harmless twice."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def within(self, awaitable: Awaitable[None]) -> bool:
        """Await ``awaitable``: True when it finished in time, False when the deadline passed
        first (it is then cancelled). Its own errors propagate; so does a cancellation of the
        calling task by anyone else."""
        # Naming the loop spares current_task a getpid() system call per await.
        task = asyncio.current_task(self._loop)
        assert task is not None
        self._running[task] = time.monotonic()
        try:
            await awaitable
        except asyncio.CancelledError:
            if task not in self._late or task.uncancel() > 0:
                raise
            return False
        finally:
            del self._running[task]
            self._late.discard(task)
        return True

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            limit = time.monotonic() - self.seconds
            late = []
            for task, started in self._running.items():
                if started > limit:
                    break
                late.append(task)
            for task in late:
                if task not in self._late:
                    self._late.add(task)
                    task.cancel()
