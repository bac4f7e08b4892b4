"""The JSON Twilio returns for each resource, rendered from a call's timeline at one instant.

Shapes and formats follow Twilio's OpenAPI specs (twilio-oai/): every property the spec names is
present (``null`` when Twilio has no value), Api v2010 times are RFC 2822, Insights times ISO 8601
(sometimes with fractional seconds), call prices negative strings, usage prices positive numbers.
"""

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any, Final

from simulator.fake_twilio.state import FakeAccount, FakeCall, Phase
from voicepulse.messages import VOICE_USAGE_CATEGORIES

__all__ = [
    "VOICE_CATEGORIES",
    "account_json",
    "call_json",
    "rfc2822",
    "summary_json",
    "usage_day",
    "usage_records",
]

API = "/2010-04-01"
VOICE_CATEGORIES: Final = VOICE_USAGE_CATEGORIES
_CATEGORY_TEXT: Final = {
    "calls": "Voice Minutes",
    "calls-inbound": "Inbound Voice Minutes",
    "calls-outbound": "Outbound Voice Minutes",
    "calls-sip": "SIP Voice Minutes",
    "trunking-termination": "SIP Trunking Termination Minutes",
    "trunking-origination": "SIP Trunking Origination Minutes",
}
_INSIGHTS_STATE: Final = {
    "completed": "completed",
    "busy": "busy",
    "no-answer": "noanswer",
    "failed": "fail",
    "canceled": "canceled",
    "in-progress": "answered",
    "ringing": "ringing",
}


def rfc2822(moment: datetime | None) -> str | None:
    """``Tue, 31 Aug 2010 20:36:29 +0000``, as Api v2010 writes times."""
    if moment is None:
        return None
    return format_datetime(moment.replace(microsecond=0))


def _iso(moment: datetime, fractional: bool) -> str:
    if fractional:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def account_json(account: FakeAccount, *, with_token: bool) -> dict[str, Any]:
    uri = f"{API}/Accounts/{account.sid}.json"
    return {
        "auth_token": account.auth_token if with_token else None,
        "date_created": rfc2822(account.created),
        "date_updated": rfc2822(account.created),
        "friendly_name": account.friendly_name,
        "owner_account_sid": account.owner_sid,
        "sid": account.sid,
        "status": "active",
        "subresource_uris": {
            "calls": f"{API}/Accounts/{account.sid}/Calls.json",
            "usage": f"{API}/Accounts/{account.sid}/Usage.json",
        },
        "type": "Full",
        "uri": uri,
    }


def call_json(call: FakeCall, phase: Phase, now: datetime) -> dict[str, Any]:
    """The Call resource as Api v2010 shows it at ``now``."""
    started = phase.status != "queued"
    updated = max(t for t in _transitions(call) if t <= now) if phase.visible else call.created
    base = f"{API}/Accounts/{call.account_sid}/Calls/{call.sid}"
    return {
        "sid": call.sid,
        "date_created": rfc2822(call.created),
        "date_updated": rfc2822(updated),
        "parent_call_sid": None,
        "account_sid": call.account_sid,
        "to": call.to,
        "to_formatted": call.to,
        "from": call.from_,
        "from_formatted": call.from_,
        "phone_number_sid": None,
        "status": phase.status,
        "start_time": rfc2822(call.start) if started else None,
        "end_time": rfc2822(call.end) if phase.ended else None,
        "duration": str(call.duration_s) if phase.ended else None,
        "price": f"-{call.price:.5f}" if phase.priced else None,
        "price_unit": "USD",
        "direction": call.direction,
        "answered_by": None,
        "api_version": "2010-04-01",
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": None,
        "queue_time": str(call.queue_time_ms),
        "trunk_sid": None,
        "uri": f"{base}.json",
        "subresource_uris": {
            "notifications": f"{base}/Notifications.json",
            "recordings": f"{base}/Recordings.json",
            "events": f"{base}/Events.json",
        },
    }


def _transitions(call: FakeCall) -> Iterable[datetime]:
    yield call.created
    yield call.start
    if call.answered is not None:
        yield call.answered
    yield call.end
    yield call.priced_at


def summary_json(call: FakeCall, state: str, url: str) -> dict[str, Any]:
    """The Voice Insights summary; a partial one lacks what Twilio adds on completion."""
    complete = state == "complete"
    fractional = int(call.sid[-1], 16) % 2 == 0  # Twilio sometimes sends milliseconds
    properties: dict[str, Any] = {
        "direction": call.direction.replace("-", "_"),
        "queue_time": call.queue_time_ms,
        "pdd_ms": call.pdd_ms,
        "last_sip_response_num": call.last_sip_response_num,
    }
    if complete:
        properties["disconnected_by"] = call.disconnected_by
    return {
        "account_sid": call.account_sid,
        "call_sid": call.sid,
        "answered_by": call.answered_by,
        "call_type": call.call_type,
        "call_state": _INSIGHTS_STATE[call.final_status],
        "processing_state": state,
        "created_time": _iso(call.created, fractional),
        "start_time": _iso(call.start, fractional),
        "end_time": _iso(call.end, fractional),
        "duration": int((call.end - call.start).total_seconds()),
        "connect_duration": call.duration_s,
        "from": _party("caller", call.from_, call.from_country),
        "to": _party("callee", call.to, call.to_country),
        "carrier_edge": {"metrics": {"inbound": {"jitter": {"avg": 0.4}}}} if complete else None,
        "client_edge": None,
        "sdk_edge": None,
        "sip_edge": None,
        "tags": list(call.tags) if complete else [],
        "url": url,
        "attributes": {"conference_participant": False},
        "properties": properties,
        "trust": None,
        "annotation": None,
    }


def _party(role: str, number: str, country: str) -> dict[str, Any]:
    return {
        role: number,
        "carrier": "Example Carrier",
        "connection": "mobile",
        "number_prefix": number[1:5],
        "country_code": country,
    }


def usage_day(call: FakeCall) -> date:
    """The day a call's usage counts in: its ``date_created`` (UTC), the day billing gives it
    (``billed_calls.day``). Twilio does not say which of a call's times dates its usage."""
    return call.created.date()


def usage_records(
    account_sid: str,
    calls: Iterable[tuple[FakeCall, Phase]],
    categories: Iterable[str],
    days: Iterable[date],
    as_of: datetime,
) -> list[dict[str, Any]]:
    """Daily usage per category, as the Call resources at ``as_of`` say: the ended calls'
    count, their billed minutes (each call's duration rounded up to the minute) and the prices
    rated so far. ``calls`` rolls every call up, so it matches the Call resources exactly."""
    totals: dict[tuple[str, date], list[Decimal]] = {}
    for call, phase in calls:
        if not phase.ended:
            continue
        for category in _categories_of(call):
            tally = totals.setdefault((category, usage_day(call)), [Decimal(0)] * 3)
            tally[0] += 1
            tally[1] += call.billed_minutes
            if phase.priced:
                tally[2] += call.price
    days = list(days)
    return [
        _usage_json(account_sid, category, day, totals.get((category, day)), as_of)
        for category in categories
        for day in days
    ]


def _categories_of(call: FakeCall) -> tuple[str, ...]:
    """``calls``, the roll-up of every call, and the one category that details it."""
    if call.call_type == "trunking":
        leaf = "trunking-origination" if call.direction == "inbound" else "trunking-termination"
        return ("calls", leaf)
    if call.call_type == "sip":
        return ("calls", "calls-sip")
    return ("calls", "calls-inbound" if call.direction == "inbound" else "calls-outbound")


def _usage_json(
    account_sid: str, category: str, day: date, tally: list[Decimal] | None, as_of: datetime
) -> dict[str, Any]:
    count, minutes, price = tally or [Decimal(0)] * 3
    base = f"{API}/Accounts/{account_sid}/Usage/Records/Daily.json"
    window = f"Category={category}&StartDate={day}&EndDate={day}"
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "as_of": _iso(as_of, False).replace("Z", "+00:00"),
        "category": category,
        "count": str(count),
        "count_unit": "calls",
        "description": _CATEGORY_TEXT[category],
        "end_date": day.isoformat(),
        "price": float(price),
        "price_unit": "usd",
        "start_date": day.isoformat(),
        "subresource_uris": {
            "all_time": f"{API}/Accounts/{account_sid}/Usage/Records/AllTime.json?Category="
            f"{category}",
        },
        "uri": f"{base}?{window}",
        "usage": str(minutes),
        "usage_unit": "minutes",
    }
