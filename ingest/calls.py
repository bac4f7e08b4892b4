"""Call resources (Api v2010 ``Calls.json``) into ``call-resource`` envelopes.

Used for what the ISV's dialer forwards on ``POST /v1/calls``. Twilio's strings are parsed
leniently: a field that does not parse is None in the normalised fields and stays whole in
``raw``. ``cost`` is the positive of Twilio's negative ``price``.
"""

import hashlib
from collections.abc import Mapping
from datetime import UTC
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import orjson

from voicepulse.envelope import Envelope

__all__ = ["call_resource_envelope"]


def call_resource_envelope(
    resource: Mapping[str, Any],
    *,
    origin: Literal["dialer", "poller"],
    parent_account_sid: str | None,
) -> Envelope:
    """The envelope for one Call resource whose ``sid`` and ``account_sid`` are strings."""
    call_sid = str(resource["sid"])
    digest = hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()
    fields: dict[str, Any] = {
        "call_sid": call_sid,
        "status": _text(resource.get("status")) or "",
        "direction": _text(resource.get("direction")) or "",
        "from": _text(resource.get("from")),
        "to": _text(resource.get("to")),
        "queue_time_ms": _int(resource.get("queue_time")),
        "duration_s": _int(resource.get("duration")),
        "cost": _cost(resource.get("price")),
        "price_unit": (_text(resource.get("price_unit")) or "").upper() or None,
        "date_created": _rfc2822(resource.get("date_created")),
        "start_time": _rfc2822(resource.get("start_time")),
        "end_time": _rfc2822(resource.get("end_time")),
        "parent_call_sid": _text(resource.get("parent_call_sid")),
        "trunk_sid": _text(resource.get("trunk_sid")),
        "origin": origin,
    }
    return Envelope(
        id=f"{call_sid}:{digest[:16]}",
        type="call-resource",
        account_sid=str(resource["account_sid"]),
        parent_account_sid=parent_account_sid,
        source=f"call-resource-{origin}",
        fields=fields,
        raw=dict(resource),
    )


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _int(value: object) -> int | None:
    text = _text(value)
    if text is None:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return int(number) if number.is_finite() else None


def _cost(value: object) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return str(abs(number)) if number.is_finite() else None


def _rfc2822(value: object) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()
