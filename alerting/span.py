"""A rule's metric over a trailing span of closed health windows.

The span's rows roll up as the SQL rollups do (:func:`processors.windows.merge_rows`: counts
and sums add, maps add key by key, QueueTime histograms merge bucket by bucket, the maximum is
the maximum), and each metric is recomputed from those sums, never averaged. :func:`measure`
reads the metric from ``merge_rows`` itself (the plain definition); :class:`Rollup` keeps the
same sums as rows enter and leave the span, so a tick costs the rows that moved, not the
span (the fast one; ``tests/alerting/test_span.py`` checks that they agree).
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from processors import sketch
from processors.windows import merge_rows
from voicepulse.messages import HealthSums

__all__ = [
    "BASELINE_UNIT_S",
    "KEPT_FIELDS",
    "Measure",
    "Rollup",
    "baseline_count",
    "measure",
]

KEPT_FIELDS: Final = tuple(sorted(HealthSums.__required_keys__))
"""The fields of a health row that a series keeps: what the rollup adds up."""

_STATUSES: Final = ("completed", "busy", "no_answer", "failed", "canceled")
_INTS: Final = (
    *_STATUSES,
    "answered",
    "talk_seconds",
    "short_calls",
    "queue_time_count",
    "trunk_cps_rejections",
)
_MAPS: Final = ("from_numbers", "attestation", "queue_time_hist")

Measure = tuple[float | None, int]
"""A metric's value over a span (None: nothing to measure) and the calls it stands on."""

BASELINE_UNIT_S: Final = {"debugger_errors_per_minute": 60, "outbound_attempts_per_hour": 3600}
"""Seconds per unit of a baseline metric's rate (per minute, per hour)."""


def baseline_count(metric: str, row: Mapping[str, Any]) -> int:
    """What a baseline metric counts in one row: debugger errors, or attempts."""
    if metric == "debugger_errors_per_minute":
        return sum(row["debugger_errors"].values())
    return sum(int(row[name]) for name in _STATUSES)


class Rollup:
    """The sums of one series' rows whose windows start in ``[tick - seconds, tick)``."""

    __slots__ = ("_created", "_ints", "_maps", "_saturated", "members", "seconds")

    def __init__(self, seconds: int, levels: Iterable[float] = ()) -> None:
        self.seconds = seconds
        self.members: dict[int, dict[str, Any]] = {}
        self._ints = dict.fromkeys(_INTS, 0)
        self._maps: dict[str, dict[str, int]] = {name: {} for name in _MAPS}
        self._created = 0
        self._saturated = dict.fromkeys(levels, 0)  # level -> saturated seconds in the span

    def move(self, rows: Mapping[int, dict[str, Any]], tick: int) -> None:
        """Make the span end at ``tick``: rows that left it are taken out, new ones added."""
        low = tick - self.seconds
        members = self.members
        for start in [s for s in members if s < low]:
            self._add(members.pop(start), -1)
        for start, row in rows.items():
            if low <= start < tick and start not in members:
                members[start] = row
                self._add(row, 1)

    def _add(self, row: Mapping[str, Any], sign: int) -> None:
        ints = self._ints
        for name in _INTS:
            ints[name] += sign * row[name]
        if self._saturated:
            per_second = row["cps_per_second"]
            self._created += sign * sum(per_second)
            for level in self._saturated:
                self._saturated[level] += sign * _saturated(per_second, level * row["cps_limit"])
        for name in _MAPS:
            counts = self._maps[name]
            for key, count in row[name].items():
                total = counts.get(key, 0) + sign * count
                if total:
                    counts[key] = total
                else:
                    del counts[key]

    def measure(self, metric: str, level: float) -> Measure:
        """The metric over the span (the same as :func:`measure` over the member rows)."""
        if not self.members:
            return None, 0
        return _FAST[metric](self, level)

    def calls(self, metric: str, level: float) -> int:
        """The calls :meth:`measure` stands on, without computing the metric itself (a rule
        below its minimum is not judged, so its value is not needed)."""
        if not self.members:
            return 0
        return _CALLS[metric](self, level)

    def _ratio(self, numerator: str, denominator: str) -> Measure:
        below = self._ints[denominator]
        return (self._ints[numerator] / below if below else None), below

    def _attempts(self) -> int:
        ints = self._ints
        return sum(ints[name] for name in _STATUSES)

    def _asr(self, level: float) -> Measure:
        attempts = self._attempts()
        return (self._ints["answered"] / attempts if attempts else None), attempts

    def _caller_id(self, level: float) -> Measure:
        counts = self._maps["from_numbers"]
        total = sum(counts.values())
        return (max(counts.values()) / total if total else None), total

    def _attestation(self, level: float) -> Measure:
        mix = self._maps["attestation"]
        total = sum(mix.values())
        return (mix.get("A", 0) / total if total else None), total

    def _queue_p95(self, level: float) -> Measure:
        maxima = [r["queue_time_max_ms"] for r in self.members.values()]
        known = [m for m in maxima if m is not None]
        hist = self._maps["queue_time_hist"]
        value = sketch.quantile(hist, 95, max(known) if known else None) if hist else None
        return value, self._ints["queue_time_count"]

    def _rejections(self, level: float) -> Measure:
        rejections = self._ints["trunk_cps_rejections"]
        return float(rejections), max(self._attempts(), rejections)

    def _cps(self, level: float) -> Measure:
        if level not in self._saturated:
            return _cps_saturated(list(self.members.values()), self.seconds, level)
        return self._saturated[level] / self.seconds, self._created


def _cps_saturated(rows: list[dict[str, Any]], seconds: int, level: float) -> Measure:
    """The share of the span's seconds in which calls created reached ``level`` x the CPS
    limit (the seconds of minutes without a row had none); calls: the calls created."""
    saturated = 0
    created = 0
    for row in rows:
        per_second = row["cps_per_second"]
        saturated += _saturated(per_second, level * float(row["cps_limit"]))
        created += sum(per_second)
    return saturated / seconds, created


def _saturated(per_second: list[int], floor: float) -> int:
    """The seconds with calls created at ``floor`` or more (and at least one)."""
    return sum(1 for count in per_second if count and count >= floor)


_FAST: Final[dict[str, Callable[[Rollup, float], Measure]]] = {
    "asr": Rollup._asr,
    "acd_s": lambda r, level: r._ratio("talk_seconds", "answered"),
    "short_call_ratio": lambda r, level: r._ratio("short_calls", "answered"),
    "caller_id_top_share": Rollup._caller_id,
    "attestation_a_share": Rollup._attestation,
    "queue_time_p95_ms": Rollup._queue_p95,
    "cps_saturated_share": Rollup._cps,
    "trunk_cps_rejections": Rollup._rejections,
}


_CALLS: Final[dict[str, Callable[[Rollup, float], int]]] = {
    "asr": lambda r, level: r._attempts(),
    "acd_s": lambda r, level: r._ints["answered"],
    "short_call_ratio": lambda r, level: r._ints["answered"],
    "caller_id_top_share": lambda r, level: sum(r._maps["from_numbers"].values()),
    "attestation_a_share": lambda r, level: sum(r._maps["attestation"].values()),
    "queue_time_p95_ms": lambda r, level: r._ints["queue_time_count"],
    "cps_saturated_share": lambda r, level: r._cps(level)[1],
    "trunk_cps_rejections": lambda r, level: max(r._attempts(), r._ints["trunk_cps_rejections"]),
}


def measure(metric: str, rows: list[dict[str, Any]], seconds: int, level: float = 0.9) -> Measure:
    """The metric over a span's rows, from their :func:`~processors.windows.merge_rows`
    rollup (the plain definition :class:`Rollup` follows)."""
    if not rows:
        return None, 0
    if metric == "cps_saturated_share":
        return _cps_saturated(rows, seconds, level)
    merged = merge_rows(rows, float(rows[-1]["cps_limit"]))
    if metric == "caller_id_top_share":
        return merged["caller_id_top_share"], sum(merged["from_numbers"].values())
    if metric == "attestation_a_share":
        mix = merged["attestation"]
        total = sum(mix.values())
        return (mix.get("A", 0) / total if total else None), total
    if metric == "trunk_cps_rejections":
        rejections = int(merged["trunk_cps_rejections"])
        return float(rejections), max(int(merged["attempts"]), rejections)
    if metric == "asr":
        return merged["asr"], merged["attempts"]
    if metric == "acd_s":
        return merged["acd_s"], merged["answered"]
    if metric == "short_call_ratio":
        return merged["short_call_ratio"], merged["answered"]
    return merged["queue_time_p95_ms"], merged["queue_time_count"]
