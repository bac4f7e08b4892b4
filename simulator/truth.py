"""Ground truth: the exact health metrics of simulated traffic, from the model's own facts.

Written from the definitions in docs/metrics.md and the window rules in
:class:`voicepulse.messages.HealthWindow`, without the processors' code: a call's attempt counts
in the minute of its terminal callback, its creation (CPS, QueueTime) in the minute it was
created, a call without a terminal callback as ``unknown`` in the minute of its last callback
plus the call timeout, a debugger event in its own minute on the ``outbound`` row.
Percentiles here are exact (nearest rank over the raw values); the streaming rows must be
within 1 % of them.
"""

import math
from collections import Counter
from typing import Any

from simulator.traffic import SimCall, Traffic
from voicepulse.messages import ISV_ACCOUNT

__all__ = ["Truth", "expected_rows", "nearest_rank"]

Truth = dict[tuple[str, str, int], dict[str, Any]]
"""(account_sid or ISV, direction group, window start epoch seconds) -> metrics."""

_OUTBOUND = {"outbound-api", "outbound-dial", "trunking-terminating"}


def nearest_rank(values: list[int], percent: int) -> int | None:
    """The value of 1-based rank ceil(percent/100 * n) among the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent * len(ordered) / 100)) - 1]


def _empty() -> dict[str, Any]:
    return {
        "attempts": 0,
        "completed": 0,
        "busy": 0,
        "no_answer": 0,
        "failed": 0,
        "canceled": 0,
        "answered": 0,
        "unknown": 0,
        "talk_seconds": 0,
        "short_calls": 0,
        "cps_per_second": [0] * 60,
        "queue_values": [],
        "trunk_cps_rejections": 0,
        "from_numbers": Counter(),
        "attestation": Counter(),
        "debugger_errors": Counter(),
        "debugger_warnings": Counter(),
        "late_events": 0,
    }


def _attestation(stir: str | None) -> str:
    if stir is None or stir.startswith("No-"):
        return "none"
    if "Failed" in stir:
        return "failed"
    return stir.removesuffix("-Diverted")[-1]


def _call(rows: Truth, call: SimCall, timeout_s: int) -> None:
    group = "outbound" if call.direction in _OUTBOUND else "inbound"

    def row(at: int) -> dict[str, Any]:
        return rows.setdefault((call.account_sid, group, at // 60 * 60), _empty())

    created = row(call.created_at)
    created["cps_per_second"][call.created_at % 60] += 1
    if group == "outbound" and call.queue_ms is not None:
        created["queue_values"].append(call.queue_ms)
    if call.terminal is None:
        row(call.callbacks[-1][2] + timeout_s)["unknown"] += 1
        return
    end = row(call.callbacks[-1][2])
    end["attempts"] += 1
    end[call.terminal.replace("-", "_")] += 1
    answered = call.terminal == "completed" and call.call_duration > 0
    if answered:
        end["answered"] += 1
        end["talk_seconds"] += call.call_duration
        end["short_calls"] += call.call_duration <= 12
    end["trunk_cps_rejections"] += call.rejected
    if group == "outbound":
        end["from_numbers"][call.from_] += 1
    else:
        end["attestation"][_attestation(call.stir_verstat)] += 1


def expected_rows(traffic: Traffic, *, call_timeout_s: int) -> Truth:
    """The exact metrics per (account, direction group, minute), ISV aggregate included."""
    rows: Truth = {}
    for call in traffic.calls:
        _call(rows, call, call_timeout_s)
    for event in traffic.debugger:
        key = (event.account_sid, "outbound", event.at // 60 * 60)
        row = rows.setdefault(key, _empty())
        row["debugger_errors" if event.level == "error" else "debugger_warnings"][event.code] += 1
    isv: Truth = {}
    for (_, group, start), row in rows.items():
        total = isv.setdefault((ISV_ACCOUNT, group, start), _empty())
        for name, value in row.items():
            if name == "cps_per_second":
                total[name] = [a + b for a, b in zip(total[name], value, strict=True)]
            elif isinstance(value, Counter | list):
                total[name] += value
            else:
                total[name] += value
    rows.update(isv)
    return {key: _finish(row) for key, row in rows.items()}


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    values = row.pop("queue_values")
    row["calls_created"] = sum(row["cps_per_second"])
    row["cps_peak"] = max(row["cps_per_second"])
    row["queue_time_count"] = len(values)
    row["queue_time_sum_ms"] = sum(values)
    row["queue_time_max_ms"] = max(values) if values else None
    row["queue_time_p50_ms"] = nearest_rank(values, 50)
    row["queue_time_p95_ms"] = nearest_rank(values, 95)
    for name in ("from_numbers", "attestation", "debugger_errors", "debugger_warnings"):
        row[name] = {k: v for k, v in sorted(row[name].items()) if v}
    return row
