"""The state of one health window and its ``voicepulse.health`` row.

A window holds counters that calls add to and take back from (a call whose state changes moves
its contribution), so the row is always the sum over the calls that belong to it: the same set of
events gives the same row, whatever their order or duplicates.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast, get_args, get_type_hints

from processors import sketch
from processors.calls import Contribution
from voicepulse.envelope import epoch_iso
from voicepulse.messages import HealthSums, HealthWindow

__all__ = ["Window", "merge_rows", "ratios"]

_Attempt = Literal["completed", "busy", "no_answer", "failed", "canceled"]
_STATUS_FIELDS: Final[tuple[_Attempt, ...]] = get_args(_Attempt)
"""The fields of the terminal statuses that are attempts (``unknown`` is not one)."""
_GROUPS: Final[dict[str, Literal["outbound", "inbound"]]] = {
    "outbound": "outbound",
    "inbound": "inbound",
}


@dataclass(slots=True)
class Window:
    """Counters of one (account, direction group, minute)."""

    statuses: Counter[str] = field(default_factory=Counter)
    answered: int = 0
    unknown: int = 0
    talk_seconds: int = 0
    short_calls: int = 0
    rejections: int = 0
    per_second: list[int] = field(default_factory=lambda: [0] * 60)
    queue_values: Counter[int] = field(default_factory=Counter)
    from_numbers: Counter[str] = field(default_factory=Counter)
    attestation: Counter[str] = field(default_factory=Counter)
    debugger_errors: Counter[str] = field(default_factory=Counter)
    debugger_warnings: Counter[str] = field(default_factory=Counter)
    debugger_seen: set[str] = field(default_factory=set)
    late_events: int = 0

    def apply(self, kind: str, data: Contribution, sign: int) -> None:
        """Add (sign 1) or take back (sign -1) one call's contribution of ``kind``."""
        if kind == "end":
            status, answered, talk, short, rejected, from_, attest = data
            counts = self.statuses
            counts[status] = counts.get(status, 0) + sign
            if answered:
                self.answered += sign
                self.talk_seconds += sign * talk
                self.short_calls += sign * short
            if rejected:
                self.rejections += sign
            if from_ is not None:
                counts = self.from_numbers
                counts[from_] = counts.get(from_, 0) + sign
            if attest is not None:
                counts = self.attestation
                counts[attest] = counts.get(attest, 0) + sign
        elif kind == "created":
            second, queue = data
            self.per_second[second] += sign
            if queue is not None:
                values = self.queue_values
                values[queue] = values.get(queue, 0) + sign
        elif kind == "unknown":
            self.unknown += sign
            self.rejections += sign * data[0]
        else:  # "rejected": a trunk CPS rejection known only from the debugger
            self.rejections += sign

    def debugger(self, sid: str, level: str, code: str) -> bool:
        """Count one debugger event once; False for a duplicate."""
        if sid in self.debugger_seen:
            return False
        self.debugger_seen.add(sid)
        target = self.debugger_errors if level == "error" else self.debugger_warnings
        target[code] += 1
        return True

    def sums(self, group: str, start: int, cps_limit: float, closed: bool) -> HealthSums:
        """The row's sums; ``closed`` says the window has closed (see ``HealthWindow``)."""
        queue = {value: count for value, count in self.queue_values.items() if count > 0}
        statuses = self.statuses
        return {
            "direction_group": _GROUPS[group],
            "window_start": epoch_iso(start),
            "window_end": epoch_iso(start + 60),
            "completed": statuses.get("completed", 0),
            "busy": statuses.get("busy", 0),
            "no_answer": statuses.get("no-answer", 0),
            "failed": statuses.get("failed", 0),
            "canceled": statuses.get("canceled", 0),
            "answered": self.answered,
            "unknown": self.unknown,
            "talk_seconds": self.talk_seconds,
            "short_calls": self.short_calls,
            "cps_per_second": list(self.per_second),
            "cps_limit": cps_limit,
            "queue_time_count": sum(queue.values()),
            "queue_time_sum_ms": sum(v * c for v, c in queue.items()) if queue else 0,
            "queue_time_max_ms": max(queue) if queue else None,
            "queue_time_hist": sketch.histogram(queue) if queue else {},
            "trunk_cps_rejections": self.rejections,
            "from_numbers": _sorted(self.from_numbers),
            "attestation": _sorted(self.attestation),
            "debugger_errors": _sorted(self.debugger_errors),
            "debugger_warnings": _sorted(self.debugger_warnings),
            "late_events": self.late_events,
            "closed": closed,
        }

    def fields(
        self, group: str, start: int, cps_limit: float, closed: bool = False
    ) -> HealthWindow:
        """The row (``voicepulse.health``); ``closed`` says the window has closed, False for an
        open window's interim row."""
        return ratios(self.sums(group, start, cps_limit, closed))


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return {key: counter[key] for key in sorted(counter) if counter[key]}


def ratios(sums: HealthSums) -> HealthWindow:
    """The row of these sums: the sums and what is computed from them (windows and merges)."""
    answered = sums["answered"]
    attempts = sum(sums[name] for name in _STATUS_FIELDS)
    per_second = sums["cps_per_second"]
    created = sum(per_second)
    peak = max(per_second)
    from_numbers = sums["from_numbers"]
    from_total = sum(from_numbers.values())
    hist = sums["queue_time_hist"]
    queue_max = sums["queue_time_max_ms"]
    return {
        **sums,
        "attempts": attempts,
        "asr": answered / attempts if attempts else None,
        "ner": (answered + sums["busy"] + sums["no_answer"]) / attempts if attempts else None,
        "acd_s": sums["talk_seconds"] / answered if answered else None,
        "short_call_ratio": sums["short_calls"] / answered if answered else None,
        "calls_created": created,
        "cps_peak": peak,
        "cps_mean": created / 60,
        "cps_utilisation": peak / sums["cps_limit"],
        "queue_time_p50_ms": sketch.quantile(hist, 50, queue_max) if hist else None,
        "queue_time_p95_ms": sketch.quantile(hist, 95, queue_max) if hist else None,
        "caller_id_top_share": max(from_numbers.values()) / from_total if from_total else None,
    }


# How the sums of several rows merge, from the types of their fields (HealthSums says why).
_SUM_TYPES: Final = get_type_hints(HealthSums)
_ADDED_INTS: Final = tuple(name for name, kind in _SUM_TYPES.items() if kind is int)
_ADDED_MAPS: Final = tuple(name for name, kind in _SUM_TYPES.items() if kind == dict[str, int])


def merge_rows(rows: Sequence[Mapping[str, Any]], cps_limit: float) -> HealthWindow:
    """The ISV aggregate of several accounts' rows of one window (the rules in HealthSums);
    closed once every one of them is (a row without ``closed`` counts as open)."""
    first = rows[0]
    maxima = [row["queue_time_max_ms"] for row in rows if row["queue_time_max_ms"] is not None]
    seconds = [row["cps_per_second"] for row in rows]
    merged: dict[str, Any] = {
        "direction_group": first["direction_group"],
        "window_start": first["window_start"],
        "window_end": first["window_end"],
        "cps_limit": cps_limit,
        "closed": all(row.get("closed") is True for row in rows),
        "queue_time_max_ms": max(maxima) if maxima else None,
        "cps_per_second": [sum(col) for col in zip(*seconds, strict=True)],
    }
    for name in _ADDED_INTS:
        merged[name] = sum(int(row[name]) for row in rows)
    for name in _ADDED_MAPS:
        total: Counter[str] = Counter()
        for row in rows:
            total.update(row[name])
        merged[name] = _sorted(total)
    merged["queue_time_hist"] = dict(
        sorted(merged["queue_time_hist"].items(), key=lambda item: int(item[0]))
    )
    return ratios(cast(HealthSums, merged))
