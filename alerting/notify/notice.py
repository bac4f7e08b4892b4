"""One alert state change as the notifiers see it, decoded from ``voicepulse.alerts``."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from alerting.silences import Silence
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage
from voicepulse.types import Record

__all__ = ["ALERT_TYPE", "AlertKey", "Notice"]

ALERT_TYPE: Final = "alert"

AlertKey = tuple[str, str, str]
"""(account_sid, rule, direction_group or ""): one alert, whatever its state."""


@dataclass(frozen=True, slots=True)
class Notice:
    """An ``AlertChange`` (voicepulse/messages.py); ``id`` is its idempotency key."""

    id: str
    account_sid: str
    rule: str
    state: str  # pending, firing, resolved
    changed_at: datetime
    starts_at: datetime | None
    severity: str | None
    direction_group: str | None
    value: float | None
    threshold: float | None
    message: str | None
    fields: Mapping[str, Any]  # every field of the change, kept whole for the webhook body

    @property
    def key(self) -> AlertKey:
        return (self.account_sid, self.rule, self.direction_group or "")

    @property
    def notifies(self) -> bool:
        """Firing and resolved changes are told; pending ones only enter the history."""
        return self.state in ("firing", "resolved")

    def silenced_by(self, silences: Iterable[Silence]) -> bool:
        """True when one of ``silences`` covers this alert (pass the active ones)."""
        return any(s.covers(self.account_sid, self.rule, self.direction_group) for s in silences)

    @classmethod
    def from_record(cls, record: Record) -> "Notice | None":
        """The change in ``record``; None for another envelope type; :class:`BadMessage` for
        an alert that cannot be read."""
        envelope = Envelope.from_json(record.value)
        if envelope.type != ALERT_TYPE:
            return None
        return cls.from_envelope(envelope)

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> "Notice":
        fields = envelope.fields
        try:
            return cls(
                id=envelope.id,
                account_sid=envelope.account_sid,
                rule=_text(fields, "rule"),
                state=_text(fields, "state"),
                changed_at=_time(fields["changed_at"]),
                starts_at=_time(fields["starts_at"]) if fields.get("starts_at") else None,
                severity=fields.get("severity"),
                direction_group=fields.get("direction_group"),
                value=_number(fields.get("value")),
                threshold=_number(fields.get("threshold")),
                message=fields.get("message"),
                fields=fields,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadMessage(f"alert {envelope.id}: {exc!r}") from exc


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"time without a UTC offset: {value!r}")
    return moment


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
