"""A model of Twilio voice traffic per tenant, for the simulator, the tests and the benchmarks.

Each tenant has a :class:`Profile` (healthy; low ASR; many short calls; CPS bursts whose calls
queue; trunk calls rejected with SIP 503 and debugger 32001; debugger error storms). The model
draws every call's facts first (:class:`SimCall`: creation time, queue time, statuses, duration,
SIP code, StirVerstat), then derives what Twilio sends about it: status callbacks with
Twilio's parameters and sequence numbers, the Call resource the ISV's dialer forwards, debugger
events. :mod:`simulator.truth` computes the expected metrics from the same facts, without the
processors.
"""

import dataclasses
import functools
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Final
from urllib.parse import urlencode

from ingest.normalize import status_callback_envelope
from voicepulse.envelope import Envelope, epoch_iso

__all__ = [
    "PROFILES",
    "Profile",
    "SimCall",
    "SimDebugger",
    "SimTenant",
    "Traffic",
    "callback",
    "callback_params",
    "callbacks_per_call",
    "delivery",
    "envelopes",
    "generate",
    "one_call",
    "rfc2822",
]

STORM_CODES: Final = (("11200", "error"), ("13227", "error"), ("11205", "warning"))


MIXED_VERSTATS: Final = (
    "TN-Validation-Passed-A",
    "TN-Validation-Passed-B",
    "TN-Validation-Passed-C",
    "TN-Validation-Failed-A",
    "No-TN-Validation",
    "TN-Validation-Passed-A-Diverted",
)
"""A third of the inbound calls A-attested: under attestation_low's 50 %."""
ATTESTED_VERSTATS: Final = (
    "TN-Validation-Passed-A",
    "TN-Validation-Passed-A",
    "TN-Validation-Passed-A",
    "TN-Validation-Passed-A-Diverted",
    "TN-Validation-Passed-B",
    "No-TN-Validation",
)
"""Two thirds A-attested: healthy inbound traffic."""


@dataclass(frozen=True, slots=True)
class Profile:
    """How one tenant's calls behave."""

    name: str
    answer_rate: float = 0.8
    busy_rate: float = 0.06
    failed_rate: float = 0.02
    canceled_rate: float = 0.02
    short_call_rate: float = 0.05
    mean_talk_s: float = 95
    inbound_share: float = 0.2
    from_pool: int = 40  # distinct From numbers; few means repetitive caller ID
    burst_every_s: int = 0  # CPS bursts: this many seconds apart, burst_size calls each
    burst_size: int = 0
    trunk_share: float = 0.0  # outbound calls over an Elastic SIP trunk
    trunk_reject_rate: float = 0.0  # trunk calls rejected with SIP 503 (CPS exceeded)
    storm_per_s: float = 0.0  # debugger errors/warnings not tied to a call, per second
    lost_terminal_rate: float = 0.0  # calls whose terminal callback never arrives
    # StirVerstat of inbound calls, drawn uniformly; six each, so every profile draws alike.
    verstats: tuple[str, ...] = MIXED_VERSTATS


PROFILES: Final[Sequence[Profile]] = (
    Profile("healthy", verstats=ATTESTED_VERSTATS),
    Profile("low-asr", answer_rate=0.38, busy_rate=0.22, failed_rate=0.10, mean_talk_s=60),
    Profile("short-calls", answer_rate=0.75, short_call_rate=0.55, mean_talk_s=20),
    Profile("cps-bursts", burst_every_s=20, burst_size=8, from_pool=3),
    Profile("trunk-503", trunk_share=0.7, trunk_reject_rate=0.3),
    Profile("debugger-storm", storm_per_s=2.0, lost_terminal_rate=0.05),
)


@dataclass(frozen=True, slots=True)
class SimTenant:
    account_sid: str
    parent_account_sid: str | None
    profile: Profile
    cps_limit: float = 1.0
    calls_per_second: float = 0.5


@dataclass(frozen=True, slots=True)
class SimCall:
    """The facts of one call, and the callbacks Twilio sends for it (seq, status, time)."""

    account_sid: str
    parent_account_sid: str | None
    call_sid: str
    direction: str
    from_: str
    to: str
    created_at: int  # epoch seconds (the Call resource's date_created)
    queue_ms: int | None  # outbound-api calls only (the dialer's create response)
    callbacks: tuple[tuple[int, str, int], ...]
    terminal: str | None  # None: the terminal callback is lost
    call_duration: int
    sip_code: int | None
    stir_verstat: str | None
    rejected: bool  # trunk CPS rejection (SIP 503, debugger 32001)

    @property
    def has_resource(self) -> bool:
        return self.direction == "outbound-api"


@dataclass(frozen=True, slots=True)
class SimDebugger:
    account_sid: str
    parent_account_sid: str | None
    sid: str
    at: int
    level: str
    code: str
    resource_sid: str | None


@dataclass(slots=True)
class Traffic:
    calls: list[SimCall] = field(default_factory=list)
    debugger: list[SimDebugger] = field(default_factory=list)


def _sid(rng: random.Random, prefix: str) -> str:
    return prefix + uuid.UUID(int=rng.getrandbits(128)).hex


def generate(rng: random.Random, tenants: Sequence[SimTenant], start: int, seconds: int) -> Traffic:
    """Every tenant's traffic for ``seconds`` from ``start`` (epoch seconds)."""
    traffic = Traffic()
    for tenant in tenants:
        _tenant_traffic(rng, tenant, start, seconds, traffic)
    return traffic


def _requests(rng: random.Random, tenant: SimTenant, start: int, seconds: int) -> list[float]:
    times: list[float] = []
    t = float(start)
    while True:
        t += rng.expovariate(tenant.calls_per_second)
        if t >= start + seconds:
            break
        times.append(t)
    every = tenant.profile.burst_every_s
    if every:
        for burst in range(start + every // 2, start + seconds, every):
            times.extend(burst + rng.random() * 0.9 for _ in range(tenant.profile.burst_size))
    return sorted(times)


def _tenant_traffic(
    rng: random.Random, tenant: SimTenant, start: int, seconds: int, traffic: Traffic
) -> None:
    profile = tenant.profile
    numbers = _numbers(rng, profile)
    next_slot = 0.0  # Twilio's CPS queue for API calls: one call placed per 1/limit seconds
    for requested in _requests(rng, tenant, start, seconds):
        direction = _direction(rng, profile)
        queue_ms = None
        placed = requested
        if direction == "outbound-api":
            placed = max(requested, next_slot)
            next_slot = placed + 1 / tenant.cps_limit
            queue_ms = int((placed - requested) * 1000)
        traffic.calls.append(
            _call(rng, tenant, numbers, direction, int(requested), placed, queue_ms)
        )
        call = traffic.calls[-1]
        if call.rejected and rng.random() < 0.8:
            traffic.debugger.append(
                SimDebugger(
                    tenant.account_sid,
                    tenant.parent_account_sid,
                    _sid(rng, "NO"),
                    call.callbacks[-1][2],
                    "error",
                    "32001",
                    call.call_sid,
                )
            )
    if profile.storm_per_s:
        t = float(start)
        while (t := t + rng.expovariate(profile.storm_per_s)) < start + seconds:
            code, level = rng.choice(STORM_CODES)
            traffic.debugger.append(
                SimDebugger(
                    tenant.account_sid,
                    tenant.parent_account_sid,
                    _sid(rng, "NO"),
                    int(t),
                    level,
                    code,
                    None,
                )
            )


def one_call(rng: random.Random, tenant: SimTenant, ended_at: int) -> SimCall:
    """One call drawn from ``tenant``'s profile whose last callback comes at ``ended_at``."""
    direction = _direction(rng, tenant.profile)
    queue_ms = 0 if direction == "outbound-api" else None
    drawn = _call(rng, tenant, _numbers(rng, tenant.profile), direction, 0, 0.0, queue_ms)
    shift = ended_at - (drawn.callbacks[-1][2] if drawn.callbacks else 0)
    return dataclasses.replace(
        drawn,
        created_at=drawn.created_at + shift,
        callbacks=tuple((seq, status, at + shift) for seq, status, at in drawn.callbacks),
    )


def _numbers(rng: random.Random, profile: Profile) -> list[str]:
    return [f"+1415555{rng.randrange(10000):04d}" for _ in range(profile.from_pool)]


def _direction(rng: random.Random, profile: Profile) -> str:
    inbound = rng.random() < profile.inbound_share
    trunk = not inbound and rng.random() < profile.trunk_share
    return "inbound" if inbound else "trunking-terminating" if trunk else "outbound-api"


def _outcome(rng: random.Random, profile: Profile) -> str:
    draw = rng.random()
    for status, rate in (
        ("completed", profile.answer_rate),
        ("busy", profile.busy_rate),
        ("failed", profile.failed_rate),
        ("canceled", profile.canceled_rate),
    ):
        if draw < rate:
            return status
        draw -= rate
    return "no-answer"


def _call(
    rng: random.Random,
    tenant: SimTenant,
    numbers: list[str],
    direction: str,
    created: int,
    placed: float,
    queue_ms: int | None,
) -> SimCall:
    profile = tenant.profile
    begin = int(placed)
    rejected = direction == "trunking-terminating" and rng.random() < profile.trunk_reject_rate
    outcome = "failed" if rejected else _outcome(rng, profile)
    ring = rng.randint(2, 20)
    talk = 0
    sip: int | None = 503 if rejected else None
    if outcome == "completed":
        short = rng.random() < profile.short_call_rate
        talk = (
            rng.randint(1, 12)
            if short
            else 13 + int(rng.expovariate(1 / max(profile.mean_talk_s - 13, 1)))
        )
        steps = [
            ("initiated", 0),
            ("ringing", 1),
            ("in-progress", ring),
            ("completed", ring + talk),
        ]
    elif rejected:
        steps = [("initiated", 0), ("failed", 0)]
    else:
        steps = [("initiated", 0), ("ringing", 1), (outcome, ring)]
        sip = 487 if outcome == "no-answer" else sip
    if direction == "inbound":
        steps = steps[1:]  # inbound calls start ringing
    callbacks = tuple((seq, status, begin + offset) for seq, (status, offset) in enumerate(steps))
    lost = rng.random() < profile.lost_terminal_rate
    if lost:
        callbacks = callbacks[:-1]
    stir = None
    if direction == "inbound":
        stir = rng.choice(profile.verstats)
    return SimCall(
        account_sid=tenant.account_sid,
        parent_account_sid=tenant.parent_account_sid,
        call_sid=_sid(rng, "CA"),
        direction=direction,
        from_=rng.choice(numbers)
        if direction != "inbound"
        else f"+1628555{rng.randrange(10000):04d}",
        to=f"+1628555{rng.randrange(10000):04d}" if direction != "inbound" else numbers[0],
        created_at=created
        if direction == "outbound-api"
        else callbacks[0][2]
        if callbacks
        else begin,
        queue_ms=queue_ms,
        callbacks=callbacks,
        terminal=None if lost else outcome,
        call_duration=talk,
        sip_code=sip,
        stir_verstat=stir,
        rejected=rejected,
    )


@functools.lru_cache(maxsize=4096)
def rfc2822(at: int) -> str:
    """Epoch seconds as Twilio writes a Timestamp (RFC 2822, UTC)."""
    return format_datetime(datetime.fromtimestamp(at, UTC))


def callback_params(call: SimCall) -> list[dict[str, str]]:
    """The status callbacks' form parameters, as Twilio sends them, in sequence order."""
    return [callback(call, index, rfc2822(at)) for index, (_, _, at) in enumerate(call.callbacks)]


def callback(call: SimCall, index: int, timestamp: str) -> dict[str, str]:
    """The form parameters of the call's ``index``-th status callback, its Timestamp
    ``timestamp`` (RFC 2822)."""
    seq, status, _ = call.callbacks[index]
    params = {
        "AccountSid": call.account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call.call_sid,
        "CallStatus": status,
        "Direction": call.direction,
        "From": call.from_,
        "To": call.to,
        "CallbackSource": "call-progress-events",
        "SequenceNumber": str(seq),
        "Timestamp": timestamp,
    }
    if call.stir_verstat:
        params["StirVerstat"] = call.stir_verstat
    if status == call.terminal and seq == call.callbacks[-1][0]:
        params["CallDuration"] = str(call.call_duration)
        params["Duration"] = str(-(-call.call_duration // 60))
        if call.sip_code is not None:
            params["SipResponseCode"] = str(call.sip_code)
    return params


@functools.cache
def callbacks_per_call(profiles: tuple[Profile, ...]) -> float:
    """The mean number of status callbacks per call when tenants have ``profiles`` (from a fixed
    sample), to turn a rate of callbacks into a rate of calls."""
    tenants = [
        SimTenant(f"AC{i:032x}", None, p, calls_per_second=2.0) for i, p in enumerate(profiles)
    ]
    calls = generate(random.Random(0), tenants, 0, 300).calls
    return sum(len(call.callbacks) for call in calls) / len(calls)


def envelopes(traffic: Traffic) -> list[Envelope]:
    """Everything the ingest side publishes about the traffic, in event-time order."""
    timed: list[tuple[int, int, Envelope]] = []
    for call in traffic.calls:
        for params in callback_params(call):
            pairs = list(params.items())
            envelope = status_callback_envelope(
                pairs,
                body=urlencode(pairs).encode(),
                idempotency_token=None,
                parent_account_sid=call.parent_account_sid,
            )
            timed.append((_epoch(params["Timestamp"]), 1, envelope))
        if call.has_resource:
            timed.append((call.created_at, 0, _resource(call)))
    for event in traffic.debugger:
        timed.append((event.at, 2, _debugger(event)))
    timed.sort(key=lambda item: (item[0], item[1]))
    return [envelope for _, _, envelope in timed]


def _epoch(stamp: str) -> int:
    return int(parsedate_to_datetime(stamp).timestamp())


def _resource(call: SimCall) -> Envelope:
    """The Call resource as the ISV's dialer forwards it right after creating the call."""
    fields = {
        "call_sid": call.call_sid,
        "status": "queued",
        "direction": call.direction,
        "from": call.from_,
        "to": call.to,
        "queue_time_ms": call.queue_ms,
        "duration_s": None,
        "cost": None,
        "price_unit": "USD",
        "date_created": epoch_iso(call.created_at),
        "start_time": None,
        "end_time": None,
        "parent_call_sid": None,
        "trunk_sid": None,
        "origin": "dialer",
    }
    return Envelope(
        id=f"{call.call_sid}:dialer",
        type="call-resource",
        account_sid=call.account_sid,
        parent_account_sid=call.parent_account_sid,
        source="simulate",
        fields=fields,
        received_at=epoch_iso(call.created_at),
    )


def _debugger(event: SimDebugger) -> Envelope:
    fields: dict[str, object] = {
        "sid": event.sid,
        "level": event.level,
        "timestamp": epoch_iso(event.at),
        "error_code": event.code,
        "resource_sid": event.resource_sid,
        "service_sid": None,
        "more_info": None,
        "payload": {"error_code": event.code, "resource_sid": event.resource_sid},
        "flags": [],
    }
    return Envelope(
        id=event.sid,
        type="debugger-event",
        account_sid=event.account_sid,
        parent_account_sid=event.parent_account_sid,
        source="simulate",
        fields=fields,
        received_at=epoch_iso(event.at),
    )


def delivery(
    rng: random.Random, items: Sequence[Envelope], *, max_delay_s: int, duplicate_rate: float
) -> Iterator[Envelope]:
    """The envelopes as they might arrive: each delayed by up to ``max_delay_s`` of event time
    (keep it under the grace and nothing is late), some delivered twice."""
    keyed = []
    for index, envelope in enumerate(items):
        at = _event_time(envelope)
        copies = 2 if rng.random() < duplicate_rate else 1
        for _ in range(copies):
            keyed.append((at + rng.randint(0, max_delay_s), rng.random(), index))
    keyed.sort()
    return (items[index] for _, _, index in keyed)


def _event_time(envelope: Envelope) -> int:
    fields = envelope.fields
    stamp = fields.get("timestamp") or fields.get("date_created") or envelope.received_at
    return int(datetime.fromisoformat(str(stamp)).timestamp())
