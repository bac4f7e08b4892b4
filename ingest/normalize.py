"""Status callbacks into envelopes: normalised fields beside the raw parameters, kept whole.

Signed but odd payloads (an unknown CallStatus, a Timestamp that does not parse) are still
published: the oddity is named in ``flags`` for the processors, and ``raw`` keeps everything.
"""

import functools
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from voicepulse.envelope import Envelope
from voicepulse.messages import CallStatusEvent

__all__ = ["CALL_STATUSES", "raw_params", "status_callback_envelope", "twilio_timestamp"]

CALL_STATUSES: Final = frozenset(
    {
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "no-answer",
        "failed",
        "canceled",
    }
)


_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# Twilio's own form, "Tue, 31 Aug 2010 20:36:29 +0000": parsed here without email.utils.
_TWILIO_TIMESTAMP: Final = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) "
    r"(\d\d):(\d\d):(\d\d) \+0000",
    re.ASCII,
)


def raw_params(params: Sequence[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Every parameter as sent; a repeated name keeps all its values, in order."""
    unique: dict[str, str | list[str]] = dict(params)
    if len(unique) == len(params):
        return unique
    raw: dict[str, str | list[str]] = {}
    for name, value in params:
        seen = raw.get(name)
        if seen is None:
            raw[name] = value
        elif isinstance(seen, list):
            seen.append(value)
        else:
            raw[name] = [seen, value]
    return raw


def status_callback_envelope(
    params: Sequence[tuple[str, str]],
    *,
    body: bytes,
    idempotency_token: str | None,
    parent_account_sid: str | None,
) -> Envelope:
    """The envelope for one status callback whose AccountSid and CallSid are present."""
    raw = raw_params(params)
    first = _first_values(raw, params)
    flags: list[str] = []
    call_sid = first["CallSid"]
    status = first.get("CallStatus", "")
    if status not in CALL_STATUSES:
        flags.append("unknown_call_status")
    sequence = _int(first.get("SequenceNumber"), "sequence_number", flags)
    fields: CallStatusEvent = {
        "call_sid": call_sid,
        "call_status": status,
        "direction": first.get("Direction", ""),
        "from": first.get("From", ""),
        "to": first.get("To", ""),
        "sequence_number": sequence,
        "timestamp": _rfc2822(first.get("Timestamp"), flags),
        "call_duration": _int(first.get("CallDuration"), "call_duration", flags),
        "sip_response_code": _int(first.get("SipResponseCode"), "sip_response_code", flags),
        "stir_verstat": first.get("StirVerstat"),
        "parent_call_sid": first.get("ParentCallSid"),
        "flags": flags,
    }
    return Envelope(
        id=_dedupe_id(call_sid, sequence, idempotency_token, body),
        type="call-status",
        account_sid=first["AccountSid"],
        parent_account_sid=parent_account_sid,
        source="twilio-status-callback",
        fields=fields,
        raw=raw,
    )


def _first_values(
    raw: dict[str, str | list[str]], params: Sequence[tuple[str, str]]
) -> dict[str, str]:
    if len(raw) == len(params):  # no repeated name: every value is a string
        return raw  # type: ignore[return-value]
    return {name: (v if isinstance(v, str) else v[0]) for name, v in raw.items()}


def _dedupe_id(call_sid: str, sequence: int | None, token: str | None, body: bytes) -> str:
    if sequence is not None:
        return f"{call_sid}:{sequence}"
    if token:
        return f"{call_sid}:token:{token}"
    return f"{call_sid}:sha256:{hashlib.sha256(body).hexdigest()[:32]}"


def _int(value: str | None, name: str, flags: list[str]) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        flags.append(f"unparsable_{name}")
        return None


def _rfc2822(value: str | None, flags: list[str]) -> str | None:
    if not value:
        return None
    fast = twilio_timestamp(value)
    if fast is not None:
        return fast
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        flags.append("unparsable_timestamp")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


@functools.lru_cache(maxsize=4096)
def twilio_timestamp(value: str) -> str | None:
    """Twilio's RFC 2822 form (``Tue, 31 Aug 2010 20:36:29 +0000``) as ISO 8601 UTC, or None
    for anything else, which :mod:`email.utils` then parses. Both give the same answer for
    every string this accepts (tests/ingest/test_normalize.py). Cached: with one-second
    resolution, every callback of a busy second carries the same string."""
    match = _TWILIO_TIMESTAMP.fullmatch(value)
    if match is None:
        return None
    day, month_name, year, hour, minute, second = match.groups()
    month = _MONTHS.get(month_name)
    if month is None:
        return None
    try:
        parsed = datetime(
            int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        return None
    return parsed.isoformat()
