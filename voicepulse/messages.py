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
    "CALL_FACT_SCHEMA",
    "HEALTH_RATIOS",
    "ISV_ACCOUNT",
    "QUEUE_TIME_ALPHA",
    "QUEUE_TIME_GAMMA",
    "VOICE_USAGE_CATEGORIES",
    "AlertChange",
    "AlertStateName",
    "CallFact",
    "CallResource",
    "CallStatusEvent",
    "DebuggerEvent",
    "HealthSums",
    "HealthWindow",
    "InsightsSummary",
    "UsageRecord",
]

ISV_ACCOUNT: Final = "ISV"
"""``account_sid`` of the rows that aggregate every subaccount (CPS is charged at ISV level)."""


_FromNumber = TypedDict("_FromNumber", {"from": NotRequired[str | None]})
"""``from``, a Python keyword, for the types that carry the caller's number under that name."""


class CallStatusEvent(_FromNumber):
    """``twilio.call-status``, type ``call-status``; id ``CallSid:SequenceNumber`` (else
    ``CallSid:token:<I-Twilio-Idempotency-Token>``, else ``CallSid:sha256:<body hash>``)."""

    call_sid: str
    call_status: str
    direction: str
    sequence_number: int | None
    # Added with the receiver (additive): To, and From (``from``), as Twilio sent them ("" when
    # it sent none).
    to: str
    timestamp: str | None
    call_duration: int | None
    sip_response_code: int | None
    stir_verstat: str | None
    parent_call_sid: str | None
    flags: list[str]  # e.g. unknown_call_status, unparsable_timestamp, timestamp_in_future


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


class CallResource(_FromNumber):
    """``twilio.calls``, type ``call-resource``: a Call resource, from the ISV's dialer
    (``POST /v1/calls``) or the poller; id ``CallSid:<sha256 of the resource's JSON>[:16]``."""

    call_sid: str
    status: str | None  # Call resource vocabulary translated: queued, ringing, in-progress, ...
    direction: str | None  # None when the resource lacks it (status too)
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
    processing_state: Literal["partial", "complete"] | None  # None: Twilio sent none (refused)
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


VOICE_USAGE_CATEGORIES: Final = (
    "calls",
    "calls-inbound",
    "calls-outbound",
    "calls-sip",
    "trunking-termination",
    "trunking-origination",
)
"""The usage-record categories pulled into ``twilio.usage`` by default."""


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


CALL_FACT_SCHEMA: Final = 2
"""The envelope ``schema`` of call facts: 2 since their id became ``CallSid:opened_at:version``
(it was ``CallSid:version``, which a state reopened past the dedupe horizon repeated)."""


class CallFact(_FromNumber):
    """``voicepulse.calls``, type ``call-fact``: the merged view of one call, versioned;
    id ``CallSid:opened_at:version`` (epoch seconds; unique across the call's states: a
    state reopened past the dedupe horizon counts its versions from 1 again). Downstream keeps
    the highest (opened_at, version) per call, merged with what earlier states of the call said
    (see ``opened_at``).

    A new version is emitted only on a material change: the status (open or terminal), answered,
    duration, cost, queue time, the SIP code, the Insights state (``partial`` -> ``complete``),
    a trunk CPS rejection, or closing by timeout. Versions count up from 1 and are the same
    after a replay: the same events give the same versions with the same content.

    Event time is bounded: an event stamped more than the tolerance (``event_time_tolerance_s``,
    30 s) after it was received counts at its receive time, in the call's times and windows
    alike, and the fact says ``timestamp_in_future``.
    """

    call_sid: str
    version: int
    status: str  # terminal status, or "unknown" when closed by timeout, or the latest open one
    terminal: bool
    answered: bool
    direction: str
    direction_group: Literal["outbound", "inbound"]
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
    # Added with the processors (additive):
    # StirVerstat as the health mix counts it: TN-Validation-Passed-A|B|C (and their -Diverted
    # variants) -> A|B|C, TN-Validation-Failed* -> failed, No-TN-Validation or absent -> none.
    attestation: Literal["A", "B", "C", "failed", "none"]
    trunk_cps_rejection: bool  # outbound, ended SIP 503 or had a debugger 32001/32012 event
    answered_by: str | None  # Insights answered_by (human, machine, ...)
    last_event_at: str | None  # the latest event time seen for the call (never the wall clock)
    # Added later (additive; absent in older facts, read as 1970-01-01T00:00:00+00:00):
    # the processor's stream time when this state of the call was opened. A call forgotten past
    # the dedupe horizon and heard of again gets a new state, opened later, whose versions count
    # from 1 again: facts order by (opened_at, version), and downstream merges a later state's
    # fact into what it holds from earlier ones (a terminal status never regresses).
    opened_at: NotRequired[str | None]
    # Added later (additive; absent in older facts, read as false): one of the call's events was
    # stamped more than the tolerance after it was received and was counted at its receipt.
    timestamp_in_future: NotRequired[bool]


QUEUE_TIME_ALPHA: Final = 0.01
"""Relative accuracy of the QueueTime summary: every estimate is within 1 % of the true value."""

QUEUE_TIME_GAMMA: Final = (1 + QUEUE_TIME_ALPHA) / (1 - QUEUE_TIME_ALPHA)
"""Ratio between the bounds of consecutive QueueTime buckets (about 1.0202)."""


class HealthSums(TypedDict):
    """The part of a :class:`HealthWindow` that rolls up, by field type: an ``int`` adds, an
    ``int | None`` takes the max, a ``dict[str, int]`` adds key by key, a ``list[int]`` adds
    element-wise, a ``str`` names the window (the same in every row merged), ``cps_limit`` is the
    limit of the whole, and ``closed`` holds when it holds for every row. The rest of a
    HealthWindow is computed from these (:func:`processors.windows.ratios`)."""

    direction_group: Literal["outbound", "inbound"]
    window_start: str
    window_end: str  # window_start + 60 s (exclusive)
    answered: int
    completed: int  # attempts by terminal status; the five add up to attempts
    busy: int
    no_answer: int
    failed: int
    canceled: int
    unknown: int  # calls closed by timeout without a terminal callback (not attempts)
    talk_seconds: int  # sum of CallDuration over answered calls
    short_calls: int  # answered calls with CallDuration <= 12 s
    cps_per_second: list[int]  # 60 counts: calls created in each second of the window
    cps_limit: float  # the tenant's limit (tenants file, default 1); ISV: isv_cps_limit
    queue_time_count: int  # outbound calls created in the window with a known queue time
    queue_time_sum_ms: int
    queue_time_max_ms: int | None
    queue_time_hist: dict[str, int]  # bucket index -> count, see HealthWindow
    trunk_cps_rejections: int  # outbound calls ending SIP 503 or with debugger 32001/32012
    from_numbers: dict[str, int]  # outbound attempts per From number
    attestation: dict[str, int]  # inbound attempts by StirVerstat: A, B, C, failed, none
    debugger_errors: dict[str, int]  # error-level debugger events per error code
    debugger_warnings: dict[str, int]  # warning-level debugger events per error code
    late_events: int  # events that would have changed this window after it closed
    # Added with the alert stage (additive; absent in older rows, read as False):
    # True when the row is the window's state at or after its close (stream time reached
    # window_end + grace): only late events change it after that, each counted in late_events.
    # False for an open window's interim row, which later events in the grace may still change.
    # The ISV row is closed once every subaccount row it merges is.
    closed: NotRequired[bool]


class HealthWindow(HealthSums):
    """``voicepulse.health``, type ``health-minute``: the full state of one event-time window
    (never a delta); id ``account_sid:direction_group:window_start``. ``account_sid`` is the
    subaccount, or :data:`ISV_ACCOUNT` for the aggregate of all of them.

    Which window a call counts in:

    - by its terminal status callback's ``Timestamp``: attempts, the per-status counts,
      answered, talk_seconds, short_calls, trunk_cps_rejections, from_numbers, attestation;
    - by its creation time (Call resource ``date_created``, else Insights ``created_time``, else
      its earliest status callback): calls_created, cps_per_second, the QueueTime summary;
    - a call closed by timeout (no terminal callback) counts in ``unknown`` in the window of
      its last event time plus the timeout; never in attempts.
    - debugger events by their own ``Timestamp``, on the subaccount's ``outbound`` row (a
      debugger event carries no direction).

    Rolling up (hour, day, month; or the ISV aggregate): every count and sum adds, every
    ``dict[str, int]`` adds key by key, ``cps_per_second`` adds element-wise (ISV) or its max is
    taken (peak over a longer period), ``queue_time_max_ms`` and ``cps_peak`` take the max. Ratios
    (``asr``, ``ner``, ``acd_s``, ``short_call_ratio``, the percentiles, ``cps_mean``,
    ``cps_utilisation``, ``caller_id_top_share``) are conveniences for this window only: recompute
    them from the sums, never average them.

    QueueTime summary (mergeable, relative error <= :data:`QUEUE_TIME_ALPHA`): a log-bucketed
    histogram of integer milliseconds, ``queue_time_hist`` maps the bucket index (a decimal
    string) to a count. A value v >= 1 ms falls in bucket ``i = ceil(ln(v) / ln(gamma))`` with
    ``gamma = (1 + alpha) / (1 - alpha)``, alpha = 0.01; the value 0 falls in bucket ``"-1"``.
    Bucket i stands for ``2 * gamma**i / (gamma + 1)`` (bucket -1 for 0), within alpha of every
    value in it. The p-quantile of n values is the value of 1-based rank ``ceil(p * n)``: walk
    the buckets by increasing index, take the first whose running count reaches that rank, and
    report ``least(its value, queue_time_max_ms)``. In DuckDB, merge rows with
    ``unnest(map_entries(...))`` (or ``json_each``) and ``sum(count) group by key``.
    """

    attempts: int  # the five terminal statuses added up
    calls_created: int  # calls created in the window (all of them, for CPS): sum(cps_per_second)
    cps_peak: int  # max(cps_per_second)
    asr: float | None  # answered / attempts; None without attempts
    ner: float | None  # (answered + busy + no_answer) / attempts
    acd_s: float | None  # talk_seconds / answered; None without answered calls
    short_call_ratio: float | None  # short_calls / answered
    cps_mean: float  # calls_created / 60
    cps_utilisation: float  # cps_peak / cps_limit
    queue_time_p50_ms: float | None  # from the histogram, within 1 %
    queue_time_p95_ms: float | None
    caller_id_top_share: float | None  # max(from_numbers) / sum(from_numbers)


HEALTH_RATIOS: Final = (
    "asr",
    "ner",
    "acd_s",
    "short_call_ratio",
    "cps_mean",
    "cps_utilisation",
    "queue_time_p50_ms",
    "queue_time_p95_ms",
    "caller_id_top_share",
)
"""The conveniences of a :class:`HealthWindow` for its own window only: recomputed from the
sums, never added or averaged (the warehouse stores the sums and computes them in its views)."""


AlertStateName = Literal["inactive", "pending", "firing", "resolved"]
"""An alert's states (docs/alerting.md, "Alert rules"); ``resolved`` is announced once, and
the alert is inactive after it."""


class AlertChange(TypedDict):
    """``voicepulse.alerts``, type ``alert``: one alert state change (added with the warehouse,
    additive); id ``account_sid:rule:direction_group:changed_at``, the same on every replay:
    notifiers use it as the idempotency key of the notification. The envelope's
    ``account_sid`` is the subaccount, or :data:`ISV_ACCOUNT`. The warehouse's ``alerts``
    table keeps one row per id; every field is also kept whole in its ``detail`` column, so a
    rule may add fields of its own.

    The changes: ``pending`` (broken, not yet for the rule's ``for``), ``firing``, ``resolved``
    (clear for the rule's ``keep_firing_for``; inactive afterwards), and ``inactive`` for a
    pending alert that cleared before it fired (notifiers have nothing to do for it). Times are
    event time: the end of the span of closed windows that was judged, never the wall clock.
    """

    rule: str  # e.g. asr_low, acd_low, short_calls_high, cps_saturated
    state: AlertStateName
    changed_at: str  # the tick judged: the end of the span (event time)
    severity: NotRequired[str | None]  # info, warning, critical
    direction_group: NotRequired[Literal["outbound", "inbound"] | None]
    window_start: NotRequired[str | None]  # the start of the span judged
    value: NotRequired[float | None]  # the measured value (None: nothing to measure)
    threshold: NotRequired[float | None]  # what it was compared with (baseline rules: the
    # larger of the rule's threshold and baseline_factor x baseline)
    message: NotRequired[str | None]  # one human-readable line
    # Added with the alert stage (additive):
    previous_state: NotRequired[AlertStateName]
    starts_at: NotRequired[str]  # firing/resolved: when it began firing; pending/inactive:
    # when it became pending
    tenant: NotRequired[str | None]  # the tenant's name, when the tenants file knows it
    metric: NotRequired[str]  # e.g. asr, queue_time_p95_ms
    comparison: NotRequired[Literal["<", "<=", ">", ">="]]
    baseline: NotRequired[float | None]  # baseline rules: the subaccount's own rate
    calls: NotRequired[int]  # the calls (or events) in the span the value stands on
    min_calls: NotRequired[int]  # below it the rule is not judged
    span_s: NotRequired[int]  # the span's length in seconds
    window_end: NotRequired[str]  # the end of the span (= changed_at)
