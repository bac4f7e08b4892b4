"""Attempts and answered calls per subaccount, direction group and one-minute event-time window.

Guarantees: a duplicate status callback (same dedupe id) changes nothing; a late ``ringing``
after a terminal status changes nothing; a late ``in-progress`` after the terminal callback
still marks the call answered in the window where it was counted. Every output row carries the
full state of its window, so downstream upserts are idempotent.

State is kept in memory for the life of the process (a later stage of the design bounds it and
rebuilds it after a restart).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from processors.vocabulary import ANSWERED_STATUS, TERMINAL_STATUSES, direction_group
from voicepulse import topics
from voicepulse.deadletter import dead_letter
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage
from voicepulse.types import Bus, Record

__all__ = ["HealthHandler", "MinuteCounts", "WindowKey"]

logger = logging.getLogger(__name__)

WindowKey = tuple[str, str, str]
"""(account_sid, direction_group, window_start as ISO 8601 UTC minute)."""


@dataclass(slots=True)
class _Call:
    window: WindowKey | None = None
    answered: bool = False


@dataclass(slots=True)
class _Window:
    attempts: int = 0
    answered: int = 0


@dataclass(slots=True)
class MinuteCounts:
    """The counting state, free of I/O: feed it envelopes, read back window rows."""

    _seen: set[str] = field(default_factory=set)
    _calls: dict[str, _Call] = field(default_factory=dict)
    _windows: dict[WindowKey, _Window] = field(default_factory=dict)

    def apply(self, envelope: Envelope) -> WindowKey | None:
        """Count one status callback; return the window it changed, if any."""
        if envelope.id in self._seen:
            return None
        self._seen.add(envelope.id)
        fields = envelope.fields
        call = self._calls.setdefault(str(fields["call_sid"]), _Call())
        status = fields.get("call_status")
        if status == ANSWERED_STATUS:
            return self._mark_answered(call)
        if status not in TERMINAL_STATUSES or call.window is not None:
            return None
        call.window = _window_key(envelope)
        window = self._windows.setdefault(call.window, _Window())
        window.attempts += 1
        if status == "completed" and (fields.get("call_duration") or 0) > 0:
            call.answered = True
            window.answered += 1
        return call.window

    def _mark_answered(self, call: _Call) -> WindowKey | None:
        if call.answered:
            return None
        call.answered = True
        if call.window is None:
            return None
        self._windows[call.window].answered += 1
        return call.window

    def row(self, key: WindowKey) -> Envelope:
        """The full state of one window as a ``voicepulse.health`` envelope."""
        account_sid, group, window_start = key
        window = self._windows[key]
        return Envelope(
            id=f"{account_sid}:{group}:{window_start}",
            type="health-minute",
            account_sid=account_sid,
            source="processors.health",
            fields={
                "direction_group": group,
                "window_start": window_start,
                "attempts": window.attempts,
                "answered": window.answered,
            },
        )


def _window_key(envelope: Envelope) -> WindowKey:
    stamp = envelope.fields.get("timestamp") or envelope.received_at
    try:
        minute = datetime.fromisoformat(stamp).replace(second=0, microsecond=0)
    except (TypeError, ValueError) as exc:
        raise BadMessage(f"event time {stamp!r} is not ISO 8601") from exc
    group = direction_group(str(envelope.fields.get("direction", "")))
    return envelope.account_sid, group, minute.isoformat()


class HealthHandler:
    """Consumes ``twilio.call-status``, publishes changed windows to ``voicepulse.health``."""

    name = "process"

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.counts = MinuteCounts()

    async def handle(self, records: Sequence[Record]) -> bool:
        changed: dict[WindowKey, None] = {}
        for record in records:
            try:
                envelope = Envelope.from_json(record.value)
                if "call_sid" not in envelope.fields:
                    raise BadMessage("a call-status envelope without call_sid")
                key = self.counts.apply(envelope)
            except BadMessage as exc:
                await dead_letter(self._bus, record, str(exc), stage=self.name)
                continue
            if key is not None:
                changed[key] = None
        for key in changed:
            row = self.counts.row(key)
            await self._bus.publish(topics.HEALTH, row.key, row.to_json())
        return True

    async def flush(self) -> None:
        return None
