"""Twilio REST resources into envelopes: the fields messages.py fixes, and the dedupe ids."""

from typing import Any

import orjson

from ingest.pollers.envelopes import (
    call_envelope,
    content_digest,
    insights_envelope,
    usage_digest,
    usage_envelope,
)
from voicepulse.envelope import Envelope

PARENT = "AC" + "1" * 32
SUB = "AC" + "2" * 32
CALL = "CA" + "3" * 32


def _call(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "sid": CALL,
        "account_sid": SUB,
        "status": "completed",
        "direction": "outbound-api",
        "from": "+14155550100",
        "to": "+16285550199",
        "queue_time": "1200",
        "duration": "61",
        "price": None,
        "price_unit": "usd",
        "date_created": "Thu, 26 Nov 2026 10:00:00 +0000",
        "start_time": "Thu, 26 Nov 2026 10:00:01 +0000",
        "end_time": "Thu, 26 Nov 2026 10:01:05 +0000",
        "parent_call_sid": None,
        "trunk_sid": None,
        "a_field_twilio_added": {"kept": True},
    }
    raw.update(changes)
    return raw


def test_a_call_resource_envelope() -> None:
    unrated = call_envelope(_call(), PARENT)
    rated = call_envelope(_call(price="-0.01400"), PARENT)
    assert unrated.type == "call-resource"
    assert unrated.account_sid == SUB
    assert unrated.key == SUB.encode()
    assert unrated.parent_account_sid == PARENT
    assert unrated.id == f"{CALL}:{content_digest(_call())}"
    assert rated.id != unrated.id  # the late price is a new fact
    assert call_envelope(_call(), PARENT).id == unrated.id  # the same resource, the same id
    assert unrated.fields["cost"] is None
    assert rated.fields["cost"] == "0.01400"
    assert rated.fields["price_unit"] == "USD"
    assert rated.fields["queue_time_ms"] == 1200
    assert rated.fields["duration_s"] == 61
    assert rated.fields["start_time"] == "2026-11-26T10:00:01+00:00"
    assert rated.fields["origin"] == "poller"
    assert rated.fields["parent_call_sid"] is None
    decoded = Envelope.from_json(rated.to_json())
    assert decoded.fields["from"] == "+14155550100"
    assert decoded.raw == _call(price="-0.01400")  # kept whole, unknown fields included


def test_an_unfinished_call_has_none_not_empty_values() -> None:
    fields = call_envelope(_call(status="in-progress", duration=None, end_time=None), None).fields
    assert fields["duration_s"] is None
    assert fields["end_time"] is None
    assert fields["status"] == "in-progress"


def _summary(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "account_sid": SUB,
        "call_sid": CALL,
        "call_type": "carrier",
        "call_state": "noanswer",
        "processing_state": "partial",
        "answered_by": "unknown",
        "created_time": "2026-11-26T10:00:00.250Z",
        "start_time": "2026-11-26T10:00:01Z",
        "end_time": "2026-11-26T10:00:20Z",
        "duration": 19,
        "connect_duration": 0,
        "from": {"caller": "+14155550100", "country_code": "US"},
        "to": {"callee": "+442071838750", "country_code": "GB"},
        "tags": ["high_pdd"],
        "properties": {
            "direction": "outbound_api",
            "queue_time": 1200,
            "pdd_ms": 4100,
            "last_sip_response_num": 487,
        },
    }
    raw.update(changes)
    return raw


def test_an_insights_summary_envelope_speaks_the_callback_vocabulary() -> None:
    partial = insights_envelope(_summary(), PARENT)
    fields = partial.fields
    assert partial.type == "insights-summary"
    assert partial.id == f"{CALL}:partial:{content_digest(_summary())}"
    assert fields["call_state"] == "no-answer"
    assert fields["direction"] == "outbound-api"
    assert fields["created_time"] == "2026-11-26T10:00:00.250000+00:00"
    assert fields["queue_time_ms"] == 1200
    assert fields["pdd_ms"] == 4100
    assert fields["last_sip_response_num"] == 487
    assert fields["disconnected_by"] is None
    assert (fields["from_country"], fields["to_country"]) == ("US", "GB")
    assert fields["tags"] == ["high_pdd"]
    complete = insights_envelope(_summary(processing_state="complete", call_state="fail"), PARENT)
    assert complete.id.startswith(f"{CALL}:complete:")
    assert complete.fields["call_state"] == "failed"


def _usage(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "account_sid": SUB,
        "category": "calls-outbound",
        "start_date": "2026-11-25",
        "end_date": "2026-11-25",
        "count": "12",
        "usage": "31",
        "usage_unit": "minutes",
        "price": 0.434,
        "price_unit": "usd",
        "description": "Outbound Voice Minutes",
        "as_of": "2026-11-26T10:00:00+00:00",
    }
    raw.update(changes)
    return raw


def test_a_usage_record_envelope() -> None:
    parsed = orjson.loads(orjson.dumps(_usage()))  # the price as JSON gives it: a float
    envelope = usage_envelope(parsed, PARENT)
    assert envelope.id == f"{SUB}:calls-outbound:2026-11-25"
    assert envelope.type == "usage-record"
    assert envelope.fields["cost"] == "0.434"
    assert envelope.fields["count"] == 12
    assert envelope.fields["usage"] == "31"
    assert envelope.fields["price_unit"] == "usd"
    assert usage_digest(_usage()) == usage_digest(_usage(as_of="2026-11-26T11:00:00+00:00"))
    assert usage_digest(_usage()) != usage_digest(_usage(price=0.5))
