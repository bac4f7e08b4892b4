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
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from voicepulse.errors import VoicePulseError
from voicepulse.types import Bus, Consumer, Record, TopicPartition

__all__ = ["ConsumerStage", "Handler", "Ticker"]

logger = logging.getLogger(__name__)


class Handler(Protocol):
    async def handle(self, records: Sequence[Record]) -> bool:
        """Process a batch; True when all records handled so far are durable downstream."""
        ...

    async def flush(self) -> None:
        """Make everything handled so far durable; also called on every idle poll."""
        ...


class ConsumerStage:
    """Runs a :class:`Handler` over a consumer group, following the commit protocol above."""

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
    ) -> None:
        self.name = name
        self._consumer: Consumer = bus.consumer(topics, group)
        self._handler = handler
        self._max_records = max_records
        self._poll_timeout_s = poll_timeout_s
        self._pending: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self.handled = 0

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def start(self) -> None:
        if self._task is not None:
            return
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"stage:{self.name}")

    async def drain(self, timeout_s: float) -> None:
        """Wait until a poll finds nothing new and everything handled is committed."""
        self._idle.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await task
        finally:
            await self._consumer.stop()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            records = await self._consumer.poll(self._poll_timeout_s, self._max_records)
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

    def _track(self, records: Sequence[Record]) -> None:
        for record in records:
            self._pending[record.topic_partition] = record.offset + 1

    async def _commit(self) -> None:
        if not self._pending:
            return
        offsets, self._pending = self._pending, {}
        try:
            await self._consumer.commit(offsets)
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
