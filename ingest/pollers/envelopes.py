"""Twilio REST resources into envelopes (voicepulse/messages.py), the resource JSON kept whole.

Dedupe ids, as the contract fixes them:

- ``twilio.calls``: ``CallSid:<sha256 of the resource JSON>[:16]``: a call whose price arrives
  later is a new fact with a new id; the same resource pulled twice is the same id.
- ``twilio.insights``: ``CallSid:<processing_state>:<sha256>[:16]``.
- ``twilio.usage``: ``AccountSid:category:start_date``: a later pull of the same day replaces the
  earlier one downstream.
"""

import hashlib
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Final

import orjson

from processors.vocabulary import direction, insights_state
from voicepulse.envelope import Envelope
from voicepulse.messages import CallResource, InsightsSummary, UsageRecord

__all__ = [
    "call_envelope",
    "content_digest",
    "insights_envelope",
    "usage_digest",
    "usage_envelope",
]

CALLS_SOURCE: Final = "twilio-calls-api"
INSIGHTS_SOURCE: Final = "twilio-insights-api"
USAGE_SOURCE: Final = "twilio-usage-api"


def content_digest(raw: Any) -> str:
    """The first 16 hex digits of the SHA-256 of the JSON with sorted keys."""
    return hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def usage_digest(raw: dict[str, Any]) -> str:
    """The digest of a usage record without ``as_of``, which changes on every request."""
    return content_digest({k: v for k, v in raw.items() if k != "as_of"})


def call_envelope(raw: dict[str, Any], parent_account_sid: str | None) -> Envelope:
    """A Call resource as ``twilio.calls`` carries it (origin ``poller``)."""
    fields: CallResource = {
        "call_sid": raw["sid"],
        "status": raw.get("status"),
        "direction": raw.get("direction"),
        "from": raw.get("from") or None,
        "to": raw.get("to") or None,
        "queue_time_ms": _int(raw.get("queue_time")),
        "duration_s": _int(raw.get("duration")),
        "cost": _cost(raw.get("price")),
        "price_unit": (raw.get("price_unit") or "").upper() or None,
        "date_created": _rfc2822(raw.get("date_created")),
        "start_time": _rfc2822(raw.get("start_time")),
        "end_time": _rfc2822(raw.get("end_time")),
        "parent_call_sid": raw.get("parent_call_sid") or None,
        "trunk_sid": raw.get("trunk_sid") or None,
        "origin": "poller",
    }
    return Envelope(
        id=f"{raw['sid']}:{content_digest(raw)}",
        type="call-resource",
        account_sid=raw["account_sid"],
        parent_account_sid=parent_account_sid,
        source=CALLS_SOURCE,
        fields=fields,
        raw=raw,
    )


def insights_envelope(raw: dict[str, Any], parent_account_sid: str | None) -> Envelope:
    """A Voice Insights call summary as ``twilio.insights`` carries it."""
    properties = raw.get("properties") or {}
    fields: InsightsSummary = {
        "call_sid": raw["call_sid"],
        "processing_state": raw.get("processing_state"),
        "call_type": raw.get("call_type"),
        "call_state": insights_state(raw.get("call_state")),
        "direction": direction(properties.get("direction")),
        "answered_by": raw.get("answered_by"),
        "created_time": _iso(raw.get("created_time")),
        "start_time": _iso(raw.get("start_time")),
        "end_time": _iso(raw.get("end_time")),
        "duration_s": _int(raw.get("duration")),
        "connect_duration_s": _int(raw.get("connect_duration")),
        "queue_time_ms": _int(properties.get("queue_time")),
        "pdd_ms": _int(properties.get("pdd_ms")),
        "last_sip_response_num": _int(properties.get("last_sip_response_num")),
        "disconnected_by": properties.get("disconnected_by"),
        "from_country": _country(raw.get("from")),
        "to_country": _country(raw.get("to")),
        "tags": list(raw.get("tags") or []),
    }
    state = raw.get("processing_state")
    return Envelope(
        id=f"{raw['call_sid']}:{state}:{content_digest(raw)}",
        type="insights-summary",
        account_sid=raw["account_sid"],
        parent_account_sid=parent_account_sid,
        source=INSIGHTS_SOURCE,
        fields=fields,
        raw=raw,
    )


def usage_envelope(raw: dict[str, Any], parent_account_sid: str | None) -> Envelope:
    """One daily usage record of one subaccount as ``twilio.usage`` carries it."""
    fields: UsageRecord = {
        "category": raw["category"],
        "start_date": raw["start_date"],
        "end_date": raw.get("end_date") or raw["start_date"],
        "count": _int(raw.get("count")),
        "usage": _decimal_text(raw.get("usage")),
        "usage_unit": raw.get("usage_unit"),
        "cost": _cost(raw.get("price")),
        "price_unit": raw.get("price_unit"),
        "description": raw.get("description"),
    }
    return Envelope(
        id=f"{raw['account_sid']}:{raw['category']}:{raw['start_date']}",
        type="usage-record",
        account_sid=raw["account_sid"],
        parent_account_sid=parent_account_sid,
        source=USAGE_SOURCE,
        fields=fields,
        raw=raw,
    )


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        # A float from JSON goes through its shortest repr, so 0.44 stays 0.44.
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _decimal_text(value: Any) -> str | None:
    number = _decimal(value)
    return None if number is None else str(number)


def _cost(price: Any) -> str | None:
    """Twilio's price (negative on calls, positive on usage) as a positive decimal string."""
    number = _decimal(price)
    return None if number is None else str(abs(number))


def _rfc2822(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _iso(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _country(party: Any) -> str | None:
    if isinstance(party, dict):
        code = party.get("country_code")
        return code if isinstance(code, str) and code else None
    return None
