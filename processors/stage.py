"""The processor stage on any bus (the in-process bus of ``voicepulse run``).

Commit protocol (at-least-once in, idempotent out), that of
:class:`voicepulse.stage.ConsumerStage` with :class:`ProcessorHandler`:

1. Poll a batch from the four input topics.
2. Let stream time reach the wall clock minus the configured lag, so idle subaccounts' windows
   close on time (idle polls do this too), then feed the batch to the
   :class:`~processors.processor.Processor`.
3. Publish dead letters, new call-fact versions and changed health rows; each publish returns
   once durable.
4. Commit the input offsets after the batch.

State lives in memory: on the in-process bus nothing survives the process anyway. On Kafka use
:class:`processors.kafka.KafkaProcessorStage`, which checkpoints state in a changelog inside a
transaction and so survives SIGKILL.
"""

import logging
import time
from collections.abc import Sequence
from typing import Final

from processors.engine import EngineConfig
from processors.processor import Output, Processor
from voicepulse import topics
from voicepulse.deadletter import dead_letter
from voicepulse.stage import ConsumerStage
from voicepulse.types import Bus, Record

__all__ = ["INPUT_TOPICS", "ProcessorHandler", "processor_stage", "wall_clock"]

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


class ProcessorHandler:
    """A :class:`voicepulse.stage.Handler` running call assembly and health windows.

    Each batch, and each idle poll (``flush``), is one turn: let stream time reach the wall
    clock minus the lag so idle subaccounts' windows close on time, feed the records, publish
    what changed. Every publish returns once durable, so the stage may then commit.
    """

    name = "process"

    def __init__(self, bus: Bus, config: EngineConfig, *, wall_clock_lag_s: float | None) -> None:
        self._bus = bus
        self.processor = Processor(config)
        self._lag = wall_clock_lag_s

    async def handle(self, records: Sequence[Record]) -> bool:
        await self._turn(records)
        return True

    async def flush(self) -> None:
        await self._turn(())

    async def _turn(self, records: Sequence[Record]) -> None:
        out = Output()
        now = wall_clock(self._lag)
        if now is not None:
            self.processor.tick(now)
        self.processor.feed(records, out)
        self.processor.drain(out)
        await publish_output(self._bus, out, self.name)


def processor_stage(
    bus: Bus,
    config: EngineConfig,
    *,
    group: str = "voicepulse-process",
    wall_clock_lag_s: float | None = 10.0,
) -> tuple[ConsumerStage, ProcessorHandler]:
    """The processor on any bus, with its handler (whose ``processor`` holds the state)."""
    handler = ProcessorHandler(bus, config, wall_clock_lag_s=wall_clock_lag_s)
    return ConsumerStage("process", bus, INPUT_TOPICS, group, handler), handler
