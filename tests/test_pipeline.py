"""Pipeline.stop: every stage is stopped, whatever one of them raises."""

import asyncio
import contextlib

import pytest

from voicepulse.bus.memory import InProcessBus
from voicepulse.pipeline import Pipeline


class _Stage:
    """A stage whose task ends as told: cleanly, or with an error that stop() re-raises."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.drained = False
        self.stopped = False
        self._task: asyncio.Task[None] | None = None

    @property
    def task(self) -> "asyncio.Task[None] | None":
        return self._task

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        if self.error is not None:
            raise self.error
        await asyncio.Event().wait()

    async def drain(self, timeout_s: float) -> None:
        self.drained = True

    async def stop(self) -> None:
        task, self._task = self._task, None
        self.stopped = True
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_stage_that_failed_does_not_keep_the_later_ones_running() -> None:
    failing = _Stage("processor", RuntimeError("processor broke"))
    sink = _Stage("sink")
    closed: list[str] = []
    pipeline = Pipeline(InProcessBus(), [failing, sink], closers=[lambda: closed.append("lake")])
    await pipeline.start()
    await asyncio.sleep(0)  # the failing stage's task runs and fails

    with pytest.raises(RuntimeError, match="processor broke"):
        await pipeline.stop()

    assert failing.stopped
    assert sink.drained
    assert sink.stopped
    assert sink.task is None
    assert closed == ["lake"]


async def test_stopping_twice_is_harmless() -> None:
    sink = _Stage("sink")
    pipeline = Pipeline(InProcessBus(), [sink])
    await pipeline.start()
    await pipeline.stop()
    await pipeline.stop()
    assert sink.stopped
