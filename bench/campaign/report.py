"""The campaign's figures from its raw records, and the human summary of its report."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.campaign.faults import Fault

__all__ = ["freshness", "human", "polls", "recoveries"]


def polls(path: Path) -> list[dict[str, Any]]:
    """The freshness reader's polls so far (its JSON lines)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:  # a line being written
            continue
    return rows


def _hist_quantile(hist: list[tuple[int, int]], total: int, q: float) -> float:
    rank = max(1, -(-int(q * 1000) * total // 1000))
    seen = 0
    for ms, count in hist:
        seen += count
        if seen >= rank:
            return ms / 1000
    return hist[-1][0] / 1000


def freshness(hist_path: Path, poll_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Webhook-to-warehouse freshness over every row the reader saw: p50/p95/p99/max (s)."""
    if not hist_path.exists():
        return {"rows": 0}
    hist = sorted((int(k), v) for k, v in orjson.loads(hist_path.read_bytes()).items())
    total = sum(v for _, v in hist)
    if not total:
        return {"rows": 0}
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(poll_rows)]
    return {
        "rows": total,
        "p50_s": _hist_quantile(hist, total, 0.50),
        "p95_s": _hist_quantile(hist, total, 0.95),
        "p99_s": _hist_quantile(hist, total, 0.99),
        "max_s": hist[-1][0] / 1000,
        "polls": len(poll_rows),
        "poll_interval_mean_s": round(sum(gaps) / len(gaps), 3) if gaps else None,
    }


def recoveries(
    faults: list[Fault], poll_rows: list[dict[str, Any]], truth: list[dict[str, Any]], goal_s: float
) -> None:
    """Each fault's recovery: from its end (the stage restarted, the broker back) to the first
    poll showing rows received after that end, with p95 freshness under ``goal_s``; and the
    driver's non-2xx answers for callbacks due from the fault's start to its recovery."""
    for fault in faults:
        if fault.started is None or fault.ended is None:
            continue
        ended = fault.ended
        for poll in poll_rows:
            seen = poll["at"] >= ended and poll["n"] and poll["newest"] >= ended
            if seen and poll["p95"] < goal_s:
                fault.recovery_s = round(poll["at"] - ended, 1)
                break
        until = ended + (fault.recovery_s if fault.recovery_s is not None else 30.0)
        fault.errors = dict(
            Counter(
                str(x["outcome"])
                for x in truth
                if fault.started <= x["scheduled_at"] <= until
                and not (isinstance(x["outcome"], int) and 200 <= x["outcome"] < 300)
            )
        )


def _row(name: str, p: dict[str, Any]) -> str:
    growth = p.get("rss_growth_pct")
    return (
        f"  {name:10} CPU {p['cpu_mean_cores'] or 0:5.2f} cores"
        f" (peak {p['cpu_peak_cores'] or 0:.2f})"
        f"  RSS {p['rss_end_mib']:7.1f} MiB (peak {p['rss_peak_mib']:.1f})"
        f"  slope {p['rss_slope_mib_per_min'] if p['rss_slope_mib_per_min'] is not None else '-'}"
        f" MiB/min ({'-' if growth is None else f'{growth:+.1f} %'} over"
        f" {p['rss_window_s']:.0f} s)  restarts {p['restarts']}"
    )


def human(report: dict[str, Any]) -> str:
    o, d, f, v = report["options"], report["driver"], report["freshness"], report["verdict"]
    lines = [
        f"campaign: {o['rate']:,.0f} callbacks/s for {o['duration_s']:.0f} s, faults"
        f" {','.join(o['faults']) or 'none'}, {o['processors']} processors,"
        f" {o['receiver_workers']} receiver worker(s)",
        f"machine before: {report['uptime_before']}",
        f"machine after:  {report['uptime_after']}",
        f"driver: achieved {d.get('rate', 0):,.0f}/s, sent {d.get('sent', 0):,},"
        f" 2xx {d.get('ok', 0):,}, errors {d.get('errors') or 0}, late {d.get('late', 0):,}"
        f" (max lag {d.get('max_lag_ms', 0):,.0f} ms), latency p50 {d.get('p50_ms') or 0:.1f} ms"
        f" p99 {d.get('p99_ms') or 0:.1f} ms",
    ]
    if f.get("rows"):
        lines.append(
            f"freshness (webhook to warehouse, {f['rows']:,} rows): p50 {f['p50_s']:.2f} s"
            f"  p95 {f['p95_s']:.2f} s  p99 {f['p99_s']:.2f} s  max {f['max_s']:.2f} s"
            f"  (goal p95 < {report['freshness_goal_s']:.0f} s;"
            f" polled every {f['poll_interval_mean_s']} s)"
        )
    lines.append("processes:")
    lines.extend(_row(name, p) for name, p in report["processes"].items())
    for fault in report["faults"]:
        lines.append(
            f"fault {fault['kind']:9} {fault['target']:10} at {fault['at_s']} s,"
            f" down {fault['down_s']} s, recovered in {fault['recovery_s']} s,"
            f" driver errors meanwhile {fault['driver_errors'] or 0}"
        )
    c = v["counts"]
    lines.append(
        f"topic: {c.get('on_topic_distinct', 0):,} distinct envelopes"
        f" ({c.get('on_topic_records', 0):,} records) for {c.get('answered_2xx', 0):,} answered"
        f" 2xx, {c.get('answered_503', 0):,} answered 503, {c.get('not_answered', 0):,} not"
        f" answered ({c.get('not_answered_but_stored', 0):,} of them stored),"
        f" {c.get('lost_2xx', 0):,} lost"
    )
    lines.append(f"caught up {report.get('caught_up_s')} s after the load stopped")
    lines.extend(f"note: {n}" for n in report["notes"])
    if v["ok"]:
        lines.append(
            "VERDICT: OK: nothing lost, nothing counted twice, the warehouse equals the truth"
        )
    else:
        lines.append("VERDICT: FAILED")
        lines.extend(f"  {p}" for p in v["problems"])
    return "\n".join(lines)
