"""What the fake Twilio knows: accounts, API keys, calls over (simulated) time, and faults.

Every call is stored once with its whole future: when it was created, started, ended, when
Twilio rates it and when Voice Insights has a partial and then a complete summary. What a
request sees depends on the fake's clock (:class:`FakeClock`), which tests can move forward:
prices appear late, summaries go from partial to complete, exactly as on the real API.
"""

import random
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

__all__ = [
    "PARTIAL_AFTER",
    "SUMMARY_COMPLETE_AFTER",
    "FakeAccount",
    "FakeCall",
    "FakeClock",
    "FakeState",
    "FaultPlan",
    "Phase",
]

PARTIAL_AFTER = timedelta(minutes=1)
"""A partial Insights summary exists this long after the call ended."""
SUMMARY_COMPLETE_AFTER = timedelta(minutes=30)
"""The summary is complete this long after the call ended."""
INSIGHTS_RETENTION = timedelta(days=30)


class FakeClock:
    """The fake's notion of now: the wall clock plus an offset that tests may advance; or,
    once frozen, a fixed instant (so that a test's expectations do not drift while it runs)."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self._offset = offset
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen + self._offset
        return datetime.now(UTC) + self._offset

    def advance(self, by: timedelta) -> None:
        self._offset += by

    def freeze(self) -> None:
        """Stop at the current instant; :meth:`advance` still moves it."""
        if self._frozen is None:
            self._frozen = datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FakeAccount:
    """An account: the ISV's parent, or one of its subaccounts."""

    sid: str
    friendly_name: str
    auth_token: str
    owner_sid: str
    created: datetime
    insights_enabled: bool = True


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One call and its whole timeline; :meth:`phase` says what is visible at a given time."""

    sid: str
    account_sid: str
    direction: str  # Api v2010 vocabulary
    from_: str
    to: str
    final_status: str  # completed, busy, no-answer, failed, canceled
    created: datetime
    start: datetime
    answered: datetime | None
    end: datetime
    queue_time_ms: int
    price: Decimal  # positive; the API shows it negative
    price_delay: timedelta
    call_type: str
    pdd_ms: int
    last_sip_response_num: int
    disconnected_by: str
    answered_by: str
    tags: tuple[str, ...]
    from_country: str = "US"
    to_country: str = "US"

    @property
    def duration_s(self) -> int:
        """Seconds from answer to end (CallDuration), 0 when never answered."""
        if self.answered is None:
            return 0
        return int((self.end - self.answered).total_seconds())

    @property
    def billed_minutes(self) -> int:
        return -(-self.duration_s // 60)

    @property
    def priced_at(self) -> datetime:
        return self.end + self.price_delay

    def phase(self, now: datetime) -> "Phase":
        return Phase.at(self, now)


@dataclass(frozen=True, slots=True)
class Phase:
    """A call as seen at one instant."""

    visible: bool
    status: str
    ended: bool
    priced: bool
    summary: str | None  # None, "partial" or "complete"

    @classmethod
    def at(cls, call: FakeCall, now: datetime) -> "Phase":
        if now < call.created:
            return cls(False, "queued", False, False, None)
        if now < call.start:
            return cls(True, "queued", False, False, None)
        if now < call.end:
            status = "in-progress" if call.answered and now >= call.answered else "ringing"
            return cls(True, status, False, False, None)
        since_end = now - call.end
        summary: str | None = None
        if since_end >= SUMMARY_COMPLETE_AFTER:
            summary = "complete"
        elif since_end >= PARTIAL_AFTER:
            summary = "partial"
        if now - call.start > INSIGHTS_RETENTION:
            summary = None
        return cls(True, call.final_status, True, now >= call.priced_at, summary)


@dataclass
class FaultPlan:
    """Injected failures: a share of requests answered 429 (with Retry-After) or 5xx, and
    accounts whose every request fails with a given status."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    retry_after_s: int = 1
    failing_accounts: dict[str, int] = field(default_factory=dict)
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self, account_sid: str | None) -> int | None:
        """The status to fail this request with, or None to serve it."""
        if account_sid is not None and account_sid in self.failing_accounts:
            return self.failing_accounts[account_sid]
        with self._lock:
            roll = self._rng.random()
        if roll < self.rate_429:
            return 429
        if roll < self.rate_429 + self.rate_5xx:
            return 503
        return None


@dataclass
class FakeState:
    """Accounts, API keys and calls, indexed for the endpoints; plus a request tally."""

    parent: FakeAccount
    clock: FakeClock = field(default_factory=FakeClock)
    faults: FaultPlan = field(default_factory=FaultPlan)
    subaccounts: dict[str, FakeAccount] = field(default_factory=dict)
    api_keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # SK -> (secret, owner)
    calls_by_account: dict[str, list[FakeCall]] = field(default_factory=dict)
    calls_by_sid: dict[str, FakeCall] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    served: Counter[str] = field(default_factory=Counter)  # records listed, per route
    queries: Counter[str] = field(default_factory=Counter)  # "route?Name=value" per request
    retry_gaps: list[float] = field(default_factory=list)  # seconds from a 429 to its retry
    limited_at: dict[str, float] = field(default_factory=dict)  # URL -> when it got a 429

    def accounts(self) -> list[FakeAccount]:
        return [self.parent, *self.subaccounts.values()]

    def account(self, sid: str) -> FakeAccount | None:
        if sid == self.parent.sid:
            return self.parent
        return self.subaccounts.get(sid)

    def add_subaccount(self, account: FakeAccount) -> None:
        self.subaccounts[account.sid] = account
        self.calls_by_account.setdefault(account.sid, [])

    def set_insights(self, account_sid: str, *, enabled: bool) -> None:
        """Switch Voice Insights Advanced Features on or off for one account."""
        account = self.subaccounts[account_sid]
        self.subaccounts[account_sid] = FakeAccount(
            account.sid,
            account.friendly_name,
            account.auth_token,
            account.owner_sid,
            account.created,
            insights_enabled=enabled,
        )

    def add_calls(self, calls: Iterable[FakeCall]) -> None:
        """Add calls; each account's list stays sorted newest first, as the API lists them."""
        touched: set[str] = set()
        for call in calls:
            self.calls_by_account.setdefault(call.account_sid, []).append(call)
            self.calls_by_sid[call.sid] = call
            touched.add(call.account_sid)
        for sid in touched:
            self.calls_by_account[sid].sort(key=lambda c: (c.start, c.sid), reverse=True)

    def owns(self, principal: str, account_sid: str) -> bool:
        """Whether credentials of ``principal`` may read ``account_sid``."""
        account = self.account(account_sid)
        if account is None:
            return False
        return account_sid == principal or account.owner_sid == principal
