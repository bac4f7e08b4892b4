"""Envelopes as the processors and pollers publish them (voicepulse/messages.py), for tests."""

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from voicepulse import topics
from voicepulse.envelope import Envelope
from voicepulse.messages import (
    CallFact,
    CallResource,
    CallStatusEvent,
    DebuggerEvent,
    InsightsSummary,
    UsageRecord,
)
from voicepulse.types import Record

PARENT = "AC" + "f" * 32
ACCOUNT_A = "AC" + "a" * 32
ACCOUNT_B = "AC" + "b" * 32
T0 = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)


def iso(when: datetime) -> str:
    return when.isoformat()


def call_fact(
    call_sid: str,
    version: int,
    *,
    account: str = ACCOUNT_A,
    created: datetime = T0,
    status: str = "completed",
    duration: int | None = 61,
    cost: str | None = "0.0260",
    direction: str = "outbound-api",
    call_type: str | None = "carrier",
    received: datetime | None = None,
    last_event: datetime | None = None,
    parent: str = PARENT,
) -> Envelope:
    answered = status == "completed" and bool(duration)
    fields: CallFact = {
        "call_sid": call_sid,
        "version": version,
        "status": status,
        "terminal": status in {"completed", "busy", "no-answer", "failed", "canceled"},
        "answered": answered,
        "direction": direction,
        "direction_group": "outbound" if direction.startswith("outbound") else "inbound",
        "from": "+15550001111",
        "to": "+15550002222",
        "created_at": iso(created),
        "answered_at": iso(created + timedelta(seconds=5)) if answered else None,
        "ended_at": iso(created + timedelta(seconds=5 + (duration or 0))),
        "call_duration_s": duration if answered else None,
        "billed_minutes": -(-duration // 60) if answered and duration else None,
        "queue_time_ms": 120,
        "pdd_ms": 900,
        "cost": cost,
        "price_unit": "USD" if cost else None,
        "call_type": call_type,
        "sip_response_code": 200,
        "last_sip_response_num": None,
        "disconnected_by": None,
        "stir_verstat": None,
        "parent_call_sid": None,
        "trunk_sid": None,
        "insights_state": None,
        "tags": [],
        "closed_by_timeout": False,
        "late": False,
        "attestation": "none",
        "trunk_cps_rejection": False,
        "answered_by": None,
        "last_event_at": iso(last_event or created + timedelta(seconds=70)),
    }
    return Envelope(
        id=f"{call_sid}:{version}",
        type="call-fact",
        account_sid=account,
        parent_account_sid=parent,
        source="processors",
        fields=fields,
        received_at=iso(received or created + timedelta(seconds=80 + version)),
    )


def call_status(
    call_sid: str,
    seq: int,
    status: str,
    *,
    account: str = ACCOUNT_A,
    t0: datetime = T0,
    parent: str = PARENT,
) -> Envelope:
    fields: CallStatusEvent = {
        "call_sid": call_sid,
        "call_status": status,
        "direction": "outbound-api",
        "from": "+15550001111",
        "to": "+15550002222",
        "sequence_number": seq,
        "timestamp": iso(t0 + timedelta(seconds=seq)),
        "call_duration": 61 if status == "completed" else None,
        "sip_response_code": 200,
        "stir_verstat": None,
        "parent_call_sid": None,
        "flags": [],
    }
    raw = {"CallSid": call_sid, "CallStatus": status, "SequenceNumber": str(seq)}
    return Envelope(
        id=f"{call_sid}:{seq}",
        type="call-status",
        account_sid=account,
        parent_account_sid=parent,
        source="receiver",
        fields=fields,
        raw=raw,
        received_at=iso(t0 + timedelta(seconds=seq, milliseconds=10)),
    )


def health(
    account: str,
    minute: int,
    attempts: int,
    answered: int,
    hist: dict[str, int],
    *,
    t0: datetime = T0,
    parent: str | None = PARENT,
    direction_group: str = "outbound",
    **overrides: Any,
) -> Envelope:
    """A health window; ``overrides`` replace fields (short_calls, attestation, ...)."""
    start = t0 + timedelta(minutes=minute)
    fields: dict[str, Any] = {  # a HealthWindow but its ratios, which the sink ignores
        "direction_group": direction_group,
        "window_start": iso(start),
        "window_end": iso(start + timedelta(seconds=60)),
        "attempts": attempts,
        "answered": answered,
        "completed": answered,
        "busy": attempts - answered,
        "no_answer": 0,
        "failed": 0,
        "canceled": 0,
        "unknown": 0,
        "talk_seconds": 60 * answered,
        "short_calls": 0,
        "calls_created": attempts,
        "cps_per_second": [1] * attempts + [0] * (60 - attempts),
        "cps_peak": 1,
        "cps_mean": attempts / 60,
        "cps_limit": 1.0,
        "queue_time_count": sum(hist.values()),
        "queue_time_sum_ms": 0,
        "queue_time_max_ms": 100_000,
        "queue_time_hist": hist,
        "trunk_cps_rejections": 0,
        "from_numbers": {"+15550001111": attempts},
        "attestation": {},
        "debugger_errors": {},
        "debugger_warnings": {},
        "late_events": 0,
        **overrides,
    }
    return Envelope(
        id=f"{account}:{direction_group}:{iso(start)}",
        type="health-minute",
        account_sid=account,
        parent_account_sid=parent,
        source="processors",
        fields=fields,
        received_at=iso(start + timedelta(seconds=61)),
    )


def usage(
    account: str,
    day: str,
    minutes: str,
    cost: str,
    *,
    category: str = "calls",
    pulled: int = 0,
    parent: str = PARENT,
) -> Envelope:
    fields: UsageRecord = {
        "category": category,
        "start_date": day,
        "end_date": day,
        "count": 1,
        "usage": minutes,
        "usage_unit": "minutes",
        "cost": cost,
        "price_unit": "usd",
        "description": "Voice Minutes",
    }
    return Envelope(
        id=f"{account}:{category}:{day}",
        type="usage-record",
        account_sid=account,
        parent_account_sid=parent,
        source="pullers",
        fields=fields,
        received_at=iso(T0 + timedelta(hours=pulled)),
    )


TOPIC_OF = {
    "call-fact": topics.CALLS,
    "call-status": topics.CALL_STATUS,
    "health-minute": topics.HEALTH,
    "usage-record": topics.USAGE,
    "call-resource": topics.TWILIO_CALLS,
    "insights-summary": topics.INSIGHTS,
    "debugger-event": topics.DEBUGGER,
}


def records(envelopes: list[Envelope], *, start: int = 0) -> list[Record]:
    """The envelopes as records read from the bus, with consecutive offsets."""
    return [
        Record(TOPIC_OF.get(e.type, topics.ALERTS), 0, start + i, e.key, e.to_json())
        for i, e in enumerate(envelopes)
    ]


def call_resource(call_sid: str, cost: str | None, *, account: str = ACCOUNT_A) -> Envelope:
    fields: CallResource = {
        "call_sid": call_sid,
        "status": "completed",
        "direction": "outbound-api",
        "from": "+15550001111",
        "to": "+15550002222",
        "queue_time_ms": 120,
        "duration_s": 30,
        "cost": cost,
        "price_unit": "USD" if cost else None,
        "date_created": iso(T0),
        "start_time": iso(T0),
        "end_time": iso(T0 + timedelta(seconds=35)),
        "parent_call_sid": None,
        "trunk_sid": None,
        "origin": "poller",
    }
    return Envelope(
        id=f"{call_sid}:{cost}",
        type="call-resource",
        account_sid=account,
        parent_account_sid=PARENT,
        source="pullers",
        fields=fields,
        received_at=iso(T0 + timedelta(minutes=10)),
    )


def insights(
    call_sid: str, state: Literal["partial", "complete"], *, call_type: str = "sip"
) -> Envelope:
    fields: InsightsSummary = {
        "call_sid": call_sid,
        "processing_state": state,
        "call_type": call_type,
        "call_state": "completed",
        "direction": "outbound-api",
        "answered_by": None,
        "created_time": iso(T0),
        "start_time": iso(T0),
        "end_time": iso(T0 + timedelta(seconds=70)),
        "duration_s": 70,
        "connect_duration_s": 61,
        "queue_time_ms": 120,
        "pdd_ms": 900,
        "last_sip_response_num": 200,
        "disconnected_by": "callee",
        "from_country": "US",
        "to_country": "US",
        "tags": ["high_pdd"] if state == "complete" else [],
    }
    return Envelope(
        id=f"{call_sid}:{state}:x",
        type="insights-summary",
        account_sid=ACCOUNT_A,
        parent_account_sid=PARENT,
        source="pullers",
        fields=fields,
        received_at=iso(T0 + timedelta(minutes=40 if state == "complete" else 12)),
    )


def debugger(sid: str, code: str) -> Envelope:
    fields: DebuggerEvent = {
        "sid": sid,
        "level": "ERROR",
        "timestamp": iso(T0),
        "error_code": code,
        "resource_sid": "CA1",
        "service_sid": None,
        "more_info": None,
        "payload": {"error_code": code, "resource_sid": "CA1"},
        "flags": [],
    }
    return Envelope(
        id=sid,
        type="debugger-event",
        account_sid=ACCOUNT_A,
        parent_account_sid=PARENT,
        source="receiver",
        fields=fields,
        received_at=iso(T0),
    )


def alert(
    rule: str,
    state: str,
    minute: int,
    *,
    account: str = ACCOUNT_A,
    t0: datetime = T0,
    parent: str = PARENT,
) -> Envelope:
    changed = iso(t0 + timedelta(minutes=minute))
    fields = {
        "rule": rule,
        "state": state,
        "changed_at": changed,
        "severity": "warning",
        "direction_group": "outbound",
        "window_start": changed,
        "value": 0.42,
        "threshold": 0.7,
        "message": f"ASR 42 % under 70 % ({state})",
    }
    return Envelope(
        id=f"{account}:{rule}:outbound:{changed}",
        type="alert",
        account_sid=account,
        parent_account_sid=parent,
        source="processors",
        fields=fields,
        received_at=changed,
    )
