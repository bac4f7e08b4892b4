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
from collections.abc import Iterator, Sequence
from typing import Final

from processors.engine import EngineConfig
from processors.metrics import ProcessorMetrics
from processors.processor import Output, Processor
from voicepulse import topics
from voicepulse.deadletter import dead_letter_envelope
from voicepulse.metrics import StageMetrics
from voicepulse.stage import ConsumerStage
from voicepulse.types import Bus, Record

__all__ = ["INPUT_TOPICS", "ProcessorHandler", "messages", "processor_stage", "step", "wall_clock"]

logger = logging.getLogger(__name__)

INPUT_TOPICS: Final = (topics.CALL_STATUS, topics.DEBUGGER, topics.TWILIO_CALLS, topics.INSIGHTS)


def wall_clock(lag_s: float | None) -> int | None:
    """The stream time the wall clock vouches for, or None when the clock is not used."""
    return None if lag_s is None else int(time.time() - lag_s)


def step(processor: Processor, records: Sequence[Record], lag_s: float | None) -> Output:
    """One turn: let stream time reach the wall clock minus ``lag_s`` (idle windows close on
    time), apply ``records``, collect what changed."""
    out = Output()
    now = wall_clock(lag_s)
    if now is not None:
        processor.tick(now)
    processor.feed(records, out)
    processor.drain(out)
    return out


def messages(out: Output, stage: str) -> Iterator[tuple[str, bytes, bytes]]:
    """A turn's (topic, key, value) messages, in publishing order: dead letters, then call
    facts and health rows."""
    for record, reason in out.rejected:
        envelope = dead_letter_envelope(record, reason, stage=stage)
        yield topics.DEAD_LETTER, envelope.key, envelope.to_json()
    for envelope in (*out.facts, *out.rows):
        topic = topics.CALLS if envelope.type == "call-fact" else topics.HEALTH
        yield topic, envelope.key, envelope.to_json()


class ProcessorHandler:
    """A :class:`voicepulse.stage.Handler` running call assembly and health windows.

    Each batch, and each idle poll (``flush``), is one turn: let stream time reach the wall
    clock minus the lag so idle subaccounts' windows close on time, feed the records, publish
    what changed. Every publish returns once durable, so the stage may then commit.
    """

    name = "process"

    def __init__(
        self,
        bus: Bus,
        config: EngineConfig,
        *,
        wall_clock_lag_s: float | None,
        metrics: ProcessorMetrics | None = None,
    ) -> None:
        self._bus = bus
        self.processor = Processor(config)
        self._lag = wall_clock_lag_s
        self.metrics = metrics or ProcessorMetrics(self.processor)

    async def handle(self, records: Sequence[Record]) -> bool:
        await self._turn(records)
        return True

    async def flush(self) -> None:
        await self._turn(())

    async def _turn(self, records: Sequence[Record]) -> None:
        out = step(self.processor, records, self._lag)
        self.metrics.observe(out)
        for topic, key, value in messages(out, self.name):
            await self._bus.publish(topic, key, value)


def processor_stage(
    bus: Bus,
    config: EngineConfig,
    *,
    group: str = "voicepulse-process",
    wall_clock_lag_s: float | None = 10.0,
    metrics: StageMetrics | None = None,
) -> tuple[ConsumerStage, ProcessorHandler]:
    """The processor on any bus, with its handler (whose ``processor`` holds the state);
    counted on ``metrics`` when given."""
    handler = ProcessorHandler(bus, config, wall_clock_lag_s=wall_clock_lag_s)
    counters = None
    if metrics is not None:
        counters = metrics.stage(ProcessorHandler.name)
        handler.metrics = ProcessorMetrics(handler.processor, counters)
        metrics.registry.register(handler.metrics)
    stage = ConsumerStage("process", bus, INPUT_TOPICS, group, handler, metrics=counters)
    return stage, handler
