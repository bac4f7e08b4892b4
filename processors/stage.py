"""The processor stage on any bus (the in-process bus of ``voicepulse run``).

Commit protocol (at-least-once in, idempotent out):

1. Poll a batch from the four input topics.
2. Feed it to the :class:`~processors.processor.Processor`, then let stream time reach the wall
   clock minus the configured lag, so idle subaccounts' windows close on time.
3. Publish dead letters, new call-fact versions and changed health rows; each publish returns
   once durable.
4. Commit the input offsets after the batch.

State lives in memory: on the in-process bus nothing survives the process anyway. On Kafka use
:class:`processors.kafka.KafkaProcessorStage`, which checkpoints state in a changelog inside a
transaction and so survives SIGKILL.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Final

from processors.engine import EngineConfig
from processors.processor import Output, Processor
from voicepulse import topics
from voicepulse.deadletter import dead_letter
from voicepulse.types import Bus, Consumer, Record, TopicPartition

__all__ = ["INPUT_TOPICS", "ProcessorStage", "wall_clock"]

logger = logging.getLogger(__name__)

INPUT_TOPICS: Final = (topics.CALL_STATUS, topics.DEBUGGER, topics.TWILIO_CALLS, topics.INSIGHTS)


def wall_clock(lag_s: float | None) -> int | None:
    """The stream time the wall clock vouches for, or None when the clock is not used."""
    return None if lag_s is None else int(time.time() - lag_s)


async def publish_output(bus: Bus, out: Output, stage: str) -> None:
    """Publish a batch's dead letters, facts and rows (each awaited until durable)."""
    for record, reason in out.rejected:
        await dead_letter(bus, record, reason, stage=stage)
    for envelope in (*out.facts, *out.rows):
        await bus.publish(
            topics.CALLS if envelope.type == "call-fact" else topics.HEALTH,
            envelope.key,
            envelope.to_json(),
        )


class ProcessorStage:
    """Call assembly and health windows over a consumer group (see the commit protocol)."""

    name = "process"

    def __init__(
        self,
        bus: Bus,
        config: EngineConfig,
        *,
        group: str = "voicepulse-process",
        wall_clock_lag_s: float | None = 10.0,
        max_records: int = 2000,
        poll_timeout_s: float = 0.2,
    ) -> None:
        self._bus = bus
        self._consumer: Consumer = bus.consumer(INPUT_TOPICS, group)
        self.processor = Processor(config)
        self._lag = wall_clock_lag_s
        self._max_records = max_records
        self._poll_timeout_s = poll_timeout_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def start(self) -> None:
        if self._task is None:
            await self._consumer.start()
            self._task = asyncio.create_task(self._run(), name="stage:process")

    async def drain(self, timeout_s: float) -> None:
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
            await self.step(records)
            if not records:
                self._idle.set()

    async def step(self, records: Sequence[Record]) -> None:
        """One turn of the commit protocol for ``records`` (possibly none)."""
        out = Output()
        self.processor.feed(records, out)
        now = wall_clock(self._lag)
        if now is not None:
            self.processor.tick(now)
        self.processor.drain(out)
        await publish_output(self._bus, out, self.name)
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            offsets[record.topic_partition] = record.offset + 1
        if offsets:
            await self._consumer.commit(offsets)
