"""The fields of every envelope type, per topic: the contract between stages.

An envelope (:mod:`voicepulse.envelope`) carries its header (id, type, schema, account_sid,
parent_account_sid, received_at, source), then the fields below at the top level, then ``raw``
(what Twilio sent, kept whole, for the types that come from Twilio).

Conventions for every type:

- Times are ISO 8601 strings in UTC with an explicit offset (``2026-11-26T10:05:00+00:00``).
- Money is a decimal string, never a float (``"0.0130"``); ``cost`` is positive (what the
  subaccount spent), Twilio's own ``price`` sign is kept only in ``raw``.
- Statuses use the status-callback vocabulary (``in-progress``, ``no-answer``, ``canceled``),
  directions the Api v2010 vocabulary (``outbound-api``); Insights' and the Call resource's words
  are translated by :mod:`processors.vocabulary` (one place).
- A field that Twilio did not give is ``None``, never ``""`` or ``0``.
- Changes are additive: a new field may appear; a field never changes meaning or type. A
  breaking change bumps ``schema`` on the envelope.

The ``id`` of each type is its dedupe key: the same id means the same fact, so a replay or a
duplicate changes nothing downstream.
"""

from typing import Final, Literal, NotRequired, TypedDict

__all__ = [
    "ISV_ACCOUNT",
    "CallFact",
    "CallResource",
    "CallStatusEvent",
    "DebuggerEvent",
    "HealthWindow",
    "InsightsSummary",
    "UsageRecord",
]

ISV_ACCOUNT: Final = "ISV"
"""``account_sid`` of the rows that aggregate every subaccount (CPS is charged at ISV level)."""


class CallStatusEvent(TypedDict):
    """``twilio.call-status``, type ``call-status``; id ``CallSid:SequenceNumber`` (else
    ``CallSid:token:<I-Twilio-Idempotency-Token>``, else ``CallSid:sha256:<body hash>``)."""

    call_sid: str
    call_status: str
    direction: str
    sequence_number: int | None
    timestamp: str | None
    call_duration: int | None
    sip_response_code: int | None
    stir_verstat: str | None
    parent_call_sid: str | None
    flags: list[str]  # e.g. unknown_call_status, unparsable_timestamp


class DebuggerEvent(TypedDict):
    """``twilio.debugger``, type ``debugger-event``; id: the event's ``Sid`` (NO...)."""

    sid: str
    level: Literal["error", "warning"] | str  # lower-cased
    timestamp: str | None
    error_code: str | None
    resource_sid: str | None  # the call (CA...) when the event is about one
    service_sid: str | None
    more_info: str | None
    payload: dict[str, object] | None  # the parsed Payload JSON
    flags: list[str]


class CallResource(TypedDict):
    """``twilio.calls``, type ``call-resource``: a Call resource, from the ISV's dialer
    (``POST /v1/calls``) or the poller; id ``CallSid:<sha256 of the resource's JSON>[:16]``."""

    call_sid: str
    status: str  # Call resource vocabulary translated: queued, ringing, in-progress, ...
    direction: str
    from_: NotRequired[str | None]  # on the wire: "from"
    to: str | None
    queue_time_ms: int | None
    duration_s: int | None
    cost: str | None  # positive decimal; None until Twilio rates the call
    price_unit: str | None  # upper case, e.g. USD
    date_created: str | None
    start_time: str | None
    end_time: str | None
    parent_call_sid: str | None
    trunk_sid: str | None
    origin: Literal["dialer", "poller"]


class InsightsSummary(TypedDict):
    """``twilio.insights``, type ``insights-summary``; id ``CallSid:<processing_state>:<hash>``."""

    call_sid: str
    processing_state: Literal["partial", "complete"]
    call_type: str | None  # carrier, sip, trunking, client, whatsapp
    call_state: str | None  # translated to the status-callback vocabulary
    direction: str | None  # translated: outbound_api -> outbound-api
    answered_by: str | None
    created_time: str | None
    start_time: str | None
    end_time: str | None
    duration_s: int | None
    connect_duration_s: int | None
    queue_time_ms: int | None
    pdd_ms: int | None
    last_sip_response_num: int | None
    disconnected_by: str | None
    from_country: str | None
    to_country: str | None
    tags: list[str]


class UsageRecord(TypedDict):
    """``twilio.usage``, type ``usage-record``; id ``AccountSid:category:start_date``
    (a later pull of the same day replaces the earlier one downstream)."""

    category: str
    start_date: str  # YYYY-MM-DD
    end_date: str
    count: int | None
    usage: str | None  # decimal string
    usage_unit: str | None
    cost: str | None  # positive decimal
    price_unit: str | None  # lower case, as Twilio sends it
    description: str | None


class CallFact(TypedDict):
    """``voicepulse.calls``, type ``call-fact``: the merged view of one call, versioned;
    id ``CallSid:version``. Downstream keeps the highest version per call."""

    call_sid: str
    version: int
    status: str  # terminal status, or "unknown" when closed by timeout, or the latest open one
    terminal: bool
    answered: bool
    direction: str
    direction_group: Literal["outbound", "inbound"]
    from_: NotRequired[str | None]  # on the wire: "from"
    to: str | None
    created_at: str | None
    answered_at: str | None
    ended_at: str | None
    call_duration_s: int | None
    billed_minutes: int | None  # ceil(call_duration_s / 60) for answered calls
    queue_time_ms: int | None
    pdd_ms: int | None
    cost: str | None  # positive decimal; None until rated (billing estimates from a rate card)
    price_unit: str | None
    call_type: str | None
    sip_response_code: int | None
    last_sip_response_num: int | None
    disconnected_by: str | None
    stir_verstat: str | None
    parent_call_sid: str | None
    trunk_sid: str | None
    insights_state: Literal["partial", "complete"] | None
    tags: list[str]
    closed_by_timeout: bool
    late: bool  # an event arrived after its health window closed


class HealthWindow(TypedDict):
    """``voicepulse.health``, type ``health-minute``: the full state of one event-time window
    (never a delta); id ``account_sid:direction_group:window_start``. ``account_sid`` is the
    subaccount, or :data:`ISV_ACCOUNT` for the aggregate of all of them."""

    direction_group: Literal["outbound", "inbound"]
    window_start: str
    attempts: int
    answered: int
    # Later fields (processors issue): busy, no_answer, failed, canceled, unknown,
    # talk_seconds, short_calls, queue_time (mergeable summary), cps_peak, cps_mean,
    # cps_limit, trunk_cps_rejections, from_numbers, attestation, debugger_errors, late_events.
