"""Fill a :class:`FakeState` with an ISV: a parent account, subaccounts, and their calls.

Deterministic for a given seed. Calls spread over the last ``days`` days; ``recent_share`` of
them end within the last few minutes, so that a first pull sees them unrated and without a
complete Insights summary, and a later pull (after the clock moved) sees prices and complete
summaries.
"""

import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from simulator.fake_twilio.state import FakeAccount, FakeCall, FakeClock, FakeState

__all__ = ["generate_state", "new_sid"]

_OUTBOUND_RATE = Decimal("0.0140")
_INBOUND_RATE = Decimal("0.0085")
_DIRECTIONS = ("outbound-api", "outbound-api", "outbound-api", "inbound", "outbound-dial")
_TAGS = ("high_pdd", "high_jitter", "high_packet_loss", "silence")


def new_sid(rng: random.Random, prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + uuid.UUID(int=rng.getrandbits(128)).hex


def _account(rng: random.Random, name: str, owner: str | None, now: datetime) -> FakeAccount:
    sid = new_sid(rng, "AC")
    return FakeAccount(
        sid=sid,
        friendly_name=name,
        auth_token=uuid.UUID(int=rng.getrandbits(128)).hex,
        owner_sid=owner or sid,
        created=now - timedelta(days=400),
    )


def generate_state(
    *,
    subaccounts: int,
    calls: int,
    days: float = 3.0,
    recent_share: float = 0.05,
    seed: int = 1,
    clock: FakeClock | None = None,
) -> FakeState:
    """A parent with ``subaccounts`` subaccounts, one API key, and ``calls`` calls among them."""
    rng = random.Random(seed)
    clock = clock or FakeClock()
    now = clock.now()
    parent = _account(rng, "ISV parent", None, now)
    state = FakeState(parent=parent, clock=clock)
    state.api_keys[new_sid(rng, "SK")] = (uuid.UUID(int=rng.getrandbits(128)).hex, parent.sid)
    for index in range(subaccounts):
        state.add_subaccount(_account(rng, f"Tenant {index + 1}", parent.sid, now))
    sids = list(state.subaccounts)
    if sids:
        state.add_calls(
            _call(rng, sids[index % len(sids)], _end_time(rng, now, days, recent_share))
            for index in range(calls)
        )
    return state


def _end_time(rng: random.Random, now: datetime, days: float, recent_share: float) -> datetime:
    if rng.random() < recent_share:
        return now - timedelta(seconds=rng.uniform(0, 240))
    return now - timedelta(seconds=rng.uniform(600, days * 86400))


def _call(rng: random.Random, account_sid: str, end: datetime) -> FakeCall:
    direction = rng.choice(_DIRECTIONS)
    draw = rng.random()
    ring = timedelta(seconds=rng.randint(2, 20))
    queue_ms = rng.choice((0, 0, 0, rng.randint(50, 4000)))
    answered_by = "unknown"
    if draw < 0.72:
        status, talk = "completed", timedelta(seconds=rng.randint(3, 400))
        answered_by = rng.choice(("human", "human", "machine_start", "unknown"))
    else:
        status = rng.choice(("busy", "no-answer", "failed", "canceled"))
        talk = timedelta(0)
    answered_at = end - talk if status == "completed" else None
    start = end - talk - ring
    created = start - timedelta(milliseconds=queue_ms)
    minutes = -(-int(talk.total_seconds()) // 60)
    rate = _INBOUND_RATE if direction == "inbound" else _OUTBOUND_RATE
    return FakeCall(
        sid=new_sid(rng, "CA"),
        account_sid=account_sid,
        direction=direction,
        from_=f"+1415555{rng.randrange(10000):04d}",
        to=f"+1628555{rng.randrange(10000):04d}",
        final_status=status,
        created=created,
        start=start,
        answered=answered_at,
        end=end,
        queue_time_ms=queue_ms,
        price=rate * minutes,
        price_delay=timedelta(seconds=rng.uniform(30, 600)),
        call_type=rng.choice(("carrier", "carrier", "sip", "trunking")),
        pdd_ms=rng.randint(800, 6000),
        last_sip_response_num={"completed": 200, "busy": 486, "no-answer": 487}.get(status, 500),
        disconnected_by=rng.choice(("caller", "callee")),
        answered_by=answered_by,
        tags=tuple(t for t in _TAGS if rng.random() < 0.08),
    )
