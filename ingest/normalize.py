"""Status callbacks into envelopes: normalised fields beside the raw parameters, kept whole.

Signed but odd payloads (an unknown CallStatus, a Timestamp that does not parse) are still
published: the oddity is named in ``flags`` for the processors, and ``raw`` keeps everything.
"""

import hashlib
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Final

from voicepulse.envelope import Envelope

__all__ = ["CALL_STATUSES", "raw_params", "status_callback_envelope"]

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


def raw_params(params: Sequence[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Every parameter as sent; a repeated name keeps all its values, in order."""
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
    first = {name: (v if isinstance(v, str) else v[0]) for name, v in raw.items()}
    flags: list[str] = []
    call_sid = first["CallSid"]
    status = first.get("CallStatus", "")
    if status not in CALL_STATUSES:
        flags.append("unknown_call_status")
    sequence = _int(first.get("SequenceNumber"), "sequence_number", flags)
    fields: dict[str, Any] = {
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
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        flags.append("unparsable_timestamp")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()
