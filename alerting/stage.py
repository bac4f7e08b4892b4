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
from typing import Any, NamedTuple

import msgspec
import orjson

from alerting.evaluator import Evaluator
from alerting.rules import RuleSet
from voicepulse import topics
from voicepulse.deadletter import dead_letter
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage
from voicepulse.stage import ConsumerStage
from voicepulse.types import Bus, Record

__all__ = ["ALERT_GROUP", "AlertHandler", "Row", "alert_stage", "closed_row", "decode_row"]

logger = logging.getLogger(__name__)

ALERT_GROUP = "voicepulse-alert"


class _Peek(msgspec.Struct):
    """What says whether a record is a closed health row (every other field is skipped)."""

    type: str = ""
    account_sid: str = ""
    closed: bool = False


_peek = msgspec.json.Decoder(_Peek).decode


class Row(NamedTuple):
    """A closed health row: its account and its fields (the envelope's header among them)."""

    account_sid: str
    fields: Mapping[str, Any]


def closed_row(record: Record) -> Row | None:
    """A closed health row; None for an open one (the evaluator would ignore it, so it is
    not decoded whole); :class:`BadMessage` for anything that is not a health row.

    Most rows on ``voicepulse.health`` are interim rows of open windows, so they are told
    apart first by a decoder that builds nothing but three fields."""
    try:
        peek = _peek(record.value)
    except msgspec.DecodeError:
        peek = _Peek()
    if peek.type != "health-minute" or not peek.account_sid:
        envelope = decode_row(record)  # raises BadMessage with the reason
        return Row(envelope.account_sid, envelope.fields) if _closed(envelope.fields) else None
    if not peek.closed:
        return None
    fields = orjson.loads(record.value)
    _check(fields)
    return Row(peek.account_sid, fields)


def _closed(fields: Mapping[str, Any]) -> bool:
    return fields.get("closed") is True


def _check(fields: Mapping[str, Any]) -> None:
    for name in ("direction_group", "window_start"):
        if not isinstance(fields.get(name), str):
            raise BadMessage(f"a health row without {name}")


def decode_row(record: Record) -> Envelope:
    """A health row's envelope; :class:`BadMessage` for anything else."""
    envelope = Envelope.from_json(record.value)
    if envelope.type != "health-minute":
        raise BadMessage(f"not a health row: {envelope.type!r}")
    _check(envelope.fields)
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
                row = closed_row(record)
                if row is None:
                    continue
                changes.extend(self.evaluator.add(row.account_sid, row.fields))
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
