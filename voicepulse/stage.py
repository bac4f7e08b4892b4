"""A consumer stage: poll, hand the batch to a handler, commit behind what it made durable.

The commit protocol, the same for every consuming stage:

1. Poll a batch of records from the stage's consumer group.
2. Hand it to the handler, which decodes it, dead-letters what it cannot parse, and either makes
   its output durable now (publishes to the bus, writes the warehouse) or buffers it.
3. When the handler says everything handed to it so far is durable, commit the offsets after the
   last record handled; never before. A crash between 2 and 3 replays the batch: handlers are
   idempotent on output, so the replay changes nothing.
4. On every idle poll, and on stop, ask the handler to flush, then commit. Handlers that act on
   time (a sink flushing a partial batch, a processor closing idle windows) do it there.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from voicepulse.errors import VoicePulseError
from voicepulse.lifecycle import Lifecycle
from voicepulse.metrics import StageCounters
from voicepulse.types import Bus, Consumer, Record, TopicPartition

__all__ = ["LAG_INTERVAL_S", "ConsumerStage", "Handler", "LoopStage", "Ticker", "wait_idle"]

logger = logging.getLogger(__name__)

LAG_INTERVAL_S = 1.0
"""How often a consuming stage with metrics asks its consumer for its lag."""


class Handler(Protocol):
    async def handle(self, records: Sequence[Record]) -> bool:
        """Process a batch; True when all records handled so far are durable downstream."""
        ...

    async def flush(self) -> None:
        """Make everything handled so far durable; also called on every idle poll."""
        ...


async def wait_idle(
    task: "asyncio.Task[None] | None", idle: asyncio.Event, timeout_s: float
) -> None:
    """Wait until ``idle`` is set anew, for at most ``timeout_s``, and only while ``task`` runs:
    a stage whose task never started or has ended (crashed) will never be idle, so return at
    once. The task's outcome is left to whoever supervises it."""
    if task is None or task.done():
        return
    idle.clear()
    waiter = asyncio.ensure_future(idle.wait())
    try:
        await asyncio.wait((waiter, task), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


class LoopStage(Lifecycle):
    """A stage whose work is one task it owns: :meth:`start` opens its clients (:meth:`_open`)
    and runs :meth:`_run` until :meth:`stop`, which lets the current turn finish, then
    releases the clients (:meth:`_close`) and re-raises what ended the task, if anything.

    ``_run`` loops while ``_stopping`` is clear and sets ``_idle`` when a turn found nothing
    to do; :meth:`drain` waits for that.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def start(self) -> None:
        if self._task is not None:
            return
        await self._open()
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"stage:{self.name}")

    async def drain(self, timeout_s: float) -> None:
        """Wait until a turn finds nothing new to do (at most ``timeout_s``; at once when the
        stage is not running)."""
        await wait_idle(self._task, self._idle, timeout_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await task
        finally:
            await self._close()

    async def _open(self) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


class ConsumerStage(LoopStage):
    """Runs a :class:`Handler` over a consumer group, following the commit protocol above.

    Idle (for :meth:`drain`): a poll found nothing new and everything handled is committed.
    """

    def __init__(
        self,
        name: str,
        bus: Bus,
        topics: Sequence[str],
        group: str,
        handler: Handler,
        *,
        max_records: int = 2000,
        poll_timeout_s: float = 0.2,
        metrics: StageCounters | None = None,
    ) -> None:
        super().__init__(name)
        self._consumer: Consumer = bus.consumer(topics, group)
        self._metrics = metrics
        self._lag_at = Ticker()
        self._handler = handler
        self._max_records = max_records
        self._poll_timeout_s = poll_timeout_s
        self._pending: dict[TopicPartition, int] = {}
        self.handled = 0

    async def _open(self) -> None:
        await self._consumer.start()

    async def _close(self) -> None:
        await self._consumer.stop()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            records = await self._consumer.poll(self._poll_timeout_s, self._max_records)
            if self._metrics is not None:
                await self._measure(len(records))
            if records:
                self._track(records)
                if await self._handler.handle(records):
                    await self._commit()
                self.handled += len(records)
                continue
            await self._handler.flush()
            await self._commit()
            self._idle.set()
        await self._handler.flush()
        await self._commit()

    async def _measure(self, records: int) -> None:
        metrics = self._metrics
        assert metrics is not None
        if records:
            metrics.batch(records)
        if self._lag_at.elapsed >= LAG_INTERVAL_S:
            self._lag_at.reset()
            metrics.lag = await self._consumer.lag()

    def _track(self, records: Sequence[Record]) -> None:
        for record in records:
            self._pending[record.topic_partition] = record.offset + 1

    async def _commit(self) -> None:
        if not self._pending:
            return
        offsets, self._pending = self._pending, {}
        started = time.perf_counter()
        try:
            await self._consumer.commit(offsets)
            if self._metrics is not None:
                self._metrics.committed(time.perf_counter() - started)
        except VoicePulseError:
            # Nothing is lost: the records are replayed after a restart, and outputs are
            # idempotent. Keep the offsets so the next commit carries them.
            for tp, offset in offsets.items():
                self._pending.setdefault(tp, offset)
            logger.warning("%s: commit failed; will retry with the next batch", self.name)


class Ticker:
    """Monotonic seconds since a mark, for handlers that flush by time."""

    def __init__(self) -> None:
        self._mark = time.monotonic()

    def reset(self) -> None:
        self._mark = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._mark
