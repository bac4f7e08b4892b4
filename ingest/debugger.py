"""Debugger webhook events into envelopes (docs/twilio.md, "Debugger webhook").

``Payload`` is a JSON string; it is parsed into ``payload`` and its well-known members are lifted
into fields. A Payload that does not parse, a Level that is neither error nor warning, or a
Timestamp that is not ISO 8601 is flagged, never refused: ``raw`` keeps everything as sent.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.normalize import raw_params
from voicepulse.envelope import Envelope
from voicepulse.messages import DebuggerEvent

__all__ = ["debugger_envelope"]

_LEVELS = frozenset({"error", "warning"})


def debugger_envelope(
    params: Sequence[tuple[str, str]], *, parent_account_sid: str | None
) -> Envelope:
    """The envelope for one debugger event whose Sid and AccountSid are present."""
    raw = raw_params(params)
    first = {name: (v if isinstance(v, str) else v[0]) for name, v in raw.items()}
    flags: list[str] = []
    level = first.get("Level", "").lower()
    if level not in _LEVELS:
        flags.append("unknown_level")
    payload = _payload(first.get("Payload"), flags)
    fields: DebuggerEvent = {
        "sid": first["Sid"],
        "level": level,
        "timestamp": _iso8601(first.get("Timestamp"), flags),
        "error_code": _text(payload.get("error_code")) if payload else None,
        "resource_sid": _text(payload.get("resource_sid")) if payload else None,
        "service_sid": _text(payload.get("service_sid")) if payload else None,
        "more_info": _text(payload.get("more_info")) if payload else None,
        "payload": payload,
        "flags": flags,
    }
    return Envelope(
        id=first["Sid"],
        type="debugger-event",
        account_sid=first["AccountSid"],
        parent_account_sid=first.get("ParentAccountSid") or parent_account_sid,
        source="twilio-debugger",
        fields=fields,
        raw=raw,
    )


def _payload(value: str | None, flags: list[str]) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        flags.append("unparsable_payload")
        return None
    if not isinstance(doc, dict):
        flags.append("unparsable_payload")
        return None
    return doc


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _iso8601(value: str | None, flags: list[str]) -> str | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        flags.append("unparsable_timestamp")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()
