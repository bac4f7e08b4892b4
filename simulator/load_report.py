"""What the load driver reports: :class:`Progress` per interval and for the whole run, counted
by :class:`Tally` as requests are written and answered."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.http1 import Outcome, Pool

__all__ = ["LATE_S", "Progress", "Tally", "percentile"]

LATE_S = 0.02  # a callback written this long after its scheduled time is late


@dataclass(frozen=True, slots=True)
class Progress:
    """What the driver did over one interval (or the whole run, in the summary)."""

    elapsed_s: float
    target_rate: float
    rate: float  # callbacks written per second over the interval
    sent: int  # written over the interval
    ok: int  # answered 2xx over the interval
    errors: dict[str, int]  # by kind: a status code, "closed", "timeout", "invalid"
    late: int  # written more than LATE_S after their time, over the interval
    max_lag_ms: float
    p50_ms: float | None  # latency from writing the request to its answer
    p99_ms: float | None
    in_flight: int
    backlog: int  # due but not written yet: no idle connection
    unsent: int = 0  # in the summary: due but never written (the run was stopped)
    cpu_us_per_request: float | None = None  # the driver's own process CPU

    def line(self) -> str:
        """One human line, for stderr."""
        errors = " ".join(f"{k}:{v}" for k, v in sorted(self.errors.items())) or "0"
        return (
            f"{self.elapsed_s:7.1f} s  {self.rate:8,.0f}/s (target {self.target_rate:,.0f}/s)"
            f"  sent {self.sent:,}  2xx {self.ok:,}  errors {errors}"
            f"  late {self.late:,} (max {self.max_lag_ms:,.0f} ms)"
            f"  p50 {_ms(self.p50_ms)}  p99 {_ms(self.p99_ms)}"
            f"  in flight {self.in_flight}  backlog {self.backlog}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def percentile(ordered: Sequence[float], percent: int) -> float | None:
    """The nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, -(-percent * len(ordered) // 100) - 1))] * 1000


@dataclass(slots=True)
class Tally:
    """Running counts; :meth:`cut` reports and starts a new interval."""

    sent: int = 0
    ok: int = 0
    late: int = 0
    max_lag: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    interval_errors: Counter[str] = field(default_factory=Counter)
    interval_max_lag: float = 0.0
    mark: tuple[float, int, int, int, int] = (0.0, 0, 0, 0, 0)  # at, sent, ok, late, latencies

    def written(self, lag: float) -> None:
        self.sent += 1
        if lag > LATE_S:
            self.late += 1
        if lag > self.interval_max_lag:
            self.interval_max_lag = lag
            self.max_lag = max(self.max_lag, lag)

    @property
    def ended(self) -> int:
        """Requests answered or failed so far."""
        return self.ok + sum(self.errors.values())

    def answered(self, outcome: Outcome, latency: float) -> None:
        if isinstance(outcome, int) and 200 <= outcome < 300:
            self.ok += 1
            self.latencies.append(latency)
        else:
            self.errors[str(outcome)] += 1
            self.interval_errors[str(outcome)] += 1

    def cut(
        self, now: float, started: float, rate: float, pool: Pool | None, backlog: int
    ) -> Progress:
        at, sent, ok, late, lat = self.mark
        window = sorted(self.latencies[lat:])
        progress = Progress(
            elapsed_s=round(now - started, 3),
            target_rate=rate,
            rate=(self.sent - sent) / max(now - at, 1e-9),
            sent=self.sent - sent,
            ok=self.ok - ok,
            errors=dict(self.interval_errors),
            late=self.late - late,
            max_lag_ms=self.interval_max_lag * 1000,
            p50_ms=percentile(window, 50),
            p99_ms=percentile(window, 99),
            in_flight=0 if pool is None else pool.in_flight,
            backlog=backlog,
        )
        self.mark = (now, self.sent, self.ok, self.late, len(self.latencies))
        self.interval_errors = Counter()
        self.interval_max_lag = 0.0
        return progress
