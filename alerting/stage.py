"""The alert stage on the in-process bus: a consumer group on ``voicepulse.health``.

It follows :class:`voicepulse.stage.ConsumerStage`'s commit protocol: each batch's alert
changes are published (durable) before its offsets are committed. Its state lives in memory,
as everything on the in-process bus does; on Kafka the state is checkpointed in a changelog
(:mod:`alerting.kafka`). A replayed batch changes nothing: the evaluator ignores rows for
minutes it has judged.
"""

import asyncio
import logging
from collections.abc import Mapping, Sequence

from alerting.evaluator import Evaluator
from alerting.rules import RuleSet
from voicepulse import topics
from voicepulse.deadletter import dead_letter
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage
from voicepulse.stage import ConsumerStage
from voicepulse.types import Bus, Record

__all__ = ["ALERT_GROUP", "AlertHandler", "alert_stage", "decode_row"]

logger = logging.getLogger(__name__)

ALERT_GROUP = "voicepulse-alert"


def decode_row(record: Record) -> Envelope:
    """A health row's envelope; :class:`BadMessage` for anything else."""
    envelope = Envelope.from_json(record.value)
    if envelope.type != "health-minute":
        raise BadMessage(f"not a health row: {envelope.type!r}")
    fields = envelope.fields
    for name in ("direction_group", "window_start"):
        if not isinstance(fields.get(name), str):
            raise BadMessage(f"a health row without {name}")
    return envelope


class AlertHandler:
    """A :class:`voicepulse.stage.Handler`: health rows in, alert changes published."""

    name = "alert"

    def __init__(self, bus: Bus, evaluator: Evaluator) -> None:
        self._bus = bus
        self.evaluator = evaluator
        self.published = 0

    async def handle(self, records: Sequence[Record]) -> bool:
        changes: list[Envelope] = []
        for record in records:
            try:
                envelope = decode_row(record)
                changes.extend(self.evaluator.add(envelope.account_sid, envelope.fields))
            except BadMessage as exc:
                await dead_letter(self._bus, record, str(exc), stage=self.name)
        # Published together, in order: the bus groups concurrent publishes into one request.
        results = await asyncio.gather(
            *(self._bus.publish(topics.ALERTS, c.key, c.to_json()) for c in changes),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self.published += len(changes)
        return True

    async def flush(self) -> None:
        return None


def alert_stage(
    bus: Bus, rules: RuleSet, tenant_names: Mapping[str, str] | None = None
) -> tuple[ConsumerStage, AlertHandler]:
    """The alert stage over ``bus`` (in-process), and its handler (for tests)."""
    handler = AlertHandler(bus, Evaluator(rules, tenant_names))
    return ConsumerStage("alert", bus, [topics.HEALTH], ALERT_GROUP, handler), handler
