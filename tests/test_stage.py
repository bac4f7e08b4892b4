"""A consumer stage drains only while its task runs: a stage never started, or whose task
crashed, will never be idle, so its drain returns at once (shutdown after a failure must not
wait out every stage's timeout)."""

import asyncio
import time
from collections.abc import Sequence

import pytest

from voicepulse.bus import InProcessBus
from voicepulse.stage import ConsumerStage
from voicepulse.types import Record

TOPIC = "voicepulse.health"


class Failing:
    """A handler that breaks on the first record."""

    async def handle(self, records: Sequence[Record]) -> bool:
        raise RuntimeError("handler bug")

    async def flush(self) -> None:
        pass


class Counting:
    def __init__(self) -> None:
        self.seen = 0

    async def handle(self, records: Sequence[Record]) -> bool:
        self.seen += len(records)
        return True

    async def flush(self) -> None:
        pass


async def _timed_drain(stage: ConsumerStage) -> float:
    started = time.monotonic()
    await stage.drain(5)
    return time.monotonic() - started


async def test_drain_of_a_stage_never_started_returns_at_once() -> None:
    async with InProcessBus() as bus:
        stage = ConsumerStage("test", bus, [TOPIC], "g", Counting())
        assert await _timed_drain(stage) < 0.5


async def test_drain_of_a_crashed_stage_returns_at_once() -> None:
    async with InProcessBus() as bus:
        stage = ConsumerStage("test", bus, [TOPIC], "g", Failing(), poll_timeout_s=0.05)
        await stage.start()
        await bus.publish(TOPIC, b"k", b"v")
        task = stage.task
        assert task is not None
        await asyncio.wait([task], timeout=5)
        assert task.done()
        assert await _timed_drain(stage) < 0.5
        with pytest.raises(RuntimeError, match="handler bug"):
            await stage.stop()


async def test_drain_of_a_stage_crashing_while_drained_returns_when_it_crashes() -> None:
    async with InProcessBus() as bus:
        stage = ConsumerStage("test", bus, [TOPIC], "g", Failing(), poll_timeout_s=0.05)
        await stage.start()
        await asyncio.sleep(0.2)
        await bus.publish(TOPIC, b"k", b"v")  # the next poll takes it, and the stage crashes
        assert await _timed_drain(stage) < 1
        with pytest.raises(RuntimeError, match="handler bug"):
            await stage.stop()


async def test_drain_of_a_running_stage_waits_for_an_idle_poll() -> None:
    handler = Counting()
    bus = InProcessBus()
    stage = ConsumerStage("test", bus, [TOPIC], "g", handler, poll_timeout_s=0.05)
    async with bus, stage:
        for n in range(10):
            await bus.publish(TOPIC, b"k", f"{n}".encode())
        await stage.drain(5)
        assert handler.seen == 10
