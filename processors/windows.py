"""The state of one health window and its ``voicepulse.health`` row.

A window holds counters that calls add to and take back from (a call whose state changes moves
its contribution), so the row is always the sum over the calls that belong to it: the same set of
events gives the same row, whatever their order or duplicates.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from processors import sketch
from processors.calls import Contribution, iso

__all__ = ["Window", "merge_rows", "ratios"]

_STATUS_FIELDS = {
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
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

    def fields(
        self, group: str, start: int, cps_limit: float, closed: bool = False
    ) -> dict[str, Any]:
        """The row's fields (:class:`voicepulse.messages.HealthWindow`); ``closed`` says the
        window has closed (its row at or after the close), False for an open one's."""
        queue = {value: count for value, count in self.queue_values.items() if count > 0}
        statuses = self.statuses
        row: dict[str, Any] = {
            "direction_group": group,
            "window_start": iso(start),
            "window_end": iso(start + 60),
            **{name: statuses.get(status, 0) for status, name in _STATUS_FIELDS.items()},
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
        return ratios(row)


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return {key: counter[key] for key in sorted(counter) if counter[key]}


def ratios(row: dict[str, Any]) -> dict[str, Any]:
    """Fill the derived fields of a row from its sums (used for windows and for merges)."""
    answered = row["answered"]
    busy_or_no_answer = row["busy"] + row["no_answer"]
    attempts = sum(row[name] for name in _STATUS_FIELDS.values())
    per_second = row["cps_per_second"]
    created = sum(per_second)
    peak = max(per_second)
    from_numbers = row["from_numbers"]
    from_total = sum(from_numbers.values())
    hist = row["queue_time_hist"]
    queue_max = row["queue_time_max_ms"]
    row["attempts"] = attempts
    row["asr"] = answered / attempts if attempts else None
    row["ner"] = (answered + busy_or_no_answer) / attempts if attempts else None
    row["acd_s"] = row["talk_seconds"] / answered if answered else None
    row["short_call_ratio"] = row["short_calls"] / answered if answered else None
    row["calls_created"] = created
    row["cps_peak"] = peak
    row["cps_mean"] = created / 60
    row["cps_utilisation"] = peak / row["cps_limit"]
    row["queue_time_p50_ms"] = sketch.quantile(hist, 50, queue_max) if hist else None
    row["queue_time_p95_ms"] = sketch.quantile(hist, 95, queue_max) if hist else None
    row["caller_id_top_share"] = max(from_numbers.values()) / from_total if from_total else None
    return row


_ADDED_INTS = (
    *_STATUS_FIELDS.values(),
    "answered",
    "unknown",
    "talk_seconds",
    "short_calls",
    "queue_time_count",
    "queue_time_sum_ms",
    "trunk_cps_rejections",
    "late_events",
)
_ADDED_MAPS = (
    "queue_time_hist",
    "from_numbers",
    "attestation",
    "debugger_errors",
    "debugger_warnings",
)


def merge_rows(rows: list[dict[str, Any]], cps_limit: float) -> dict[str, Any]:
    """The ISV aggregate of several accounts' rows of one window (the rules in HealthWindow);
    closed once every one of them is (a row without ``closed`` counts as open)."""
    first = rows[0]
    merged: dict[str, Any] = {
        "direction_group": first["direction_group"],
        "window_start": first["window_start"],
        "window_end": first["window_end"],
        "cps_limit": cps_limit,
        "closed": all(row.get("closed") is True for row in rows),
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
    maxima = [row["queue_time_max_ms"] for row in rows if row["queue_time_max_ms"] is not None]
    merged["queue_time_max_ms"] = max(maxima) if maxima else None
    seconds = [r["cps_per_second"] for r in rows]
    merged["cps_per_second"] = [sum(col) for col in zip(*seconds, strict=True)]
    return ratios(merged)
