"""What each page shows, read from the warehouse: plain functions of a DuckDB cursor.

Each returns JSON-ready values: times as ISO 8601 UTC strings (``...Z``), money as decimal
strings, ratios as floats or ``None`` when there is nothing to divide by. ``accounts`` limits a
query to a tenant's subaccounts (``None``: every one, for operators). The subaccount series
come from the warehouse's own ``health_rollup_of(source, unit)`` macro (its account filter
reaches the scan), over the hourly rollup ``health_hour`` for hours and days; the fleet's
QueueTime p95 is merged from the histograms of today (hourly ones for the settled hours) and
read with ``processors.sketch.quantile``, the same definition the processors use.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from alerting import Rule, RuleSet
from processors.sketch import quantile
from warehouse.upsert import sql_literal

__all__ = [
    "RANGES",
    "HealthLimits",
    "alerts",
    "billing",
    "calls",
    "cps_recommendations",
    "fleet",
    "isv_top",
    "json_value",
    "series",
    "tenant_names",
]

Cursor = duckdb.DuckDBPyConnection
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Range:
    unit: str
    span: timedelta
    step: timedelta


RANGES: dict[str, Range] = {
    "1h": Range("minute", timedelta(hours=1), timedelta(minutes=1)),
    "24h": Range("hour", timedelta(days=1), timedelta(hours=1)),
    "7d": Range("hour", timedelta(days=7), timedelta(hours=1)),
    "30d": Range("day", timedelta(days=30), timedelta(days=1)),
}


@dataclass(frozen=True, slots=True)
class HealthLimits:
    """The traffic lights of the fleet: the alert rules' thresholds (docs/alerting.md)."""

    asr_min: float = 0.70
    acd_min_s: float = 30.0
    short_call_ratio_max: float = 0.10
    queue_time_p95_max_ms: float = 5000.0
    cps_utilisation_max: float = 0.90
    min_calls: int = 20

    @classmethod
    def from_rules(cls, rules: RuleSet) -> "HealthLimits":
        """The thresholds of the enabled outbound rules on these metrics (the defaults, or a
        rules file read over them); a metric without such a rule keeps its default above.
        CPS is judged at the CPS saturation rule's ``level`` of the limit, and too few calls
        below the ASR rule's ``min_calls``."""
        by_metric: dict[str, Rule] = {
            rule.metric: rule
            for rule in reversed(rules.rules.values())
            if rule.enabled and rule.direction_group == "outbound"
        }
        default = cls()

        def threshold(metric: str, fallback: float) -> float:
            rule = by_metric.get(metric)
            return fallback if rule is None else rule.threshold

        asr = by_metric.get("asr")
        cps = by_metric.get("cps_saturated_share")
        return cls(
            asr_min=threshold("asr", default.asr_min),
            acd_min_s=threshold("acd_s", default.acd_min_s),
            short_call_ratio_max=threshold("short_call_ratio", default.short_call_ratio_max),
            queue_time_p95_max_ms=threshold("queue_time_p95_ms", default.queue_time_p95_max_ms),
            cps_utilisation_max=default.cps_utilisation_max if cps is None else cps.level,
            min_calls=default.min_calls if asr is None else asr.min_calls,
        )


def json_value(value: object) -> object:
    """A warehouse value as JSON: UTC times with Z, DECIMAL as text, maps as objects."""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
        return stamp.isoformat(timespec="seconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def _rows(cur: Cursor, sql: str, params: list[Any]) -> list[Row]:
    result = cur.execute(sql, params)
    names = [d[0] for d in result.description or ()]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _only(accounts: frozenset[str] | None, column: str = "account_sid") -> tuple[str, list[Any]]:
    if accounts is None:
        return "", []
    return f" AND list_contains(?::VARCHAR[], {column})", [sorted(accounts)]


def _ratio(num: float | int | None, den: float | int | None) -> float | None:
    if num is None or not den:
        return None
    return float(num) / float(den)


def tenant_names(cur: Cursor) -> dict[str, str]:
    return {str(r["account_sid"]): str(r["name"]) for r in _rows(cur, "SELECT * FROM tenants", [])}


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class FleetSpan:
    """The fleet's raw sums over ``[start, end)``: per subaccount and hour (``hourly``), and
    the QueueTime histogram per subaccount from ``day`` on (``buckets``)."""

    hourly: list[Row]
    buckets: list[Row]


def fleet_span(
    cur: Cursor,
    start: datetime,
    end: datetime | None,
    day: datetime,
    accounts: frozenset[str] | None,
) -> FleetSpan:
    """What the fleet needs of the health rows in ``[start, end)`` (``end`` None: open): a
    closed span of whole hours is read from the hourly rollup (``health_hour``), an open one
    from the minute rows."""
    only, args = _only(accounts)
    table = "health_minute" if end is None else "health_hour"
    # Time bounds as literals: DuckLake skips files by them (a parameter reads every file).
    until = "" if end is None else f" AND window_start < {sql_literal(end)}"
    hourly = _rows(
        cur,
        "SELECT account_sid, date_trunc('hour', window_start) AS hour, "
        "sum(attempts) AS attempts, sum(answered) AS answered, "
        "sum(talk_seconds) AS talk_seconds, sum(short_calls) AS short_calls, "
        f"max(cps_peak) AS cps_peak, max(cps_limit) AS cps_limit FROM {table} "
        f"WHERE window_start >= {sql_literal(start)}{until} AND account_sid <> 'ISV'{only} "
        "GROUP BY ALL",
        args,
    )
    buckets = _rows(
        cur,
        "SELECT account_sid, CAST(e.key AS VARCHAR) AS bucket, sum(e.value) AS n, "
        "max(queue_time_max_ms) AS max_ms FROM (SELECT account_sid, queue_time_max_ms, "
        f"unnest(map_entries(queue_time_hist)) AS e FROM {table} "
        f"WHERE window_start >= {sql_literal(max(start, day))}{until} "
        f"AND account_sid <> 'ISV'{only}) GROUP BY ALL",
        args,
    )
    return FleetSpan(hourly, buckets)


def known_tenants(cur: Cursor, accounts: frozenset[str] | None) -> list[Row]:
    only, args = _only(accounts)
    return _rows(cur, f"SELECT account_sid, name, cps_limit FROM tenants WHERE true{only}", args)


def month_costs(cur: Cursor, month: date, accounts: frozenset[str] | None) -> list[Row]:
    """Cost per subaccount in ``month`` (``billing_monthly``)."""
    only, args = _only(accounts)
    return _rows(
        cur,
        "SELECT account_sid, min(currency) AS currency, sum(cost) AS cost FROM billing_monthly "
        f"WHERE scope = 'subaccount' AND month = ?{only} GROUP BY ALL",
        [month, *args],
    )


def open_alert_counts(cur: Cursor, accounts: frozenset[str] | None) -> dict[str, int]:
    return {str(r["account_sid"]): int(r["n"]) for r in _open_alert_counts(cur, accounts)}


def fleet(
    known: list[Row],
    spans: Iterable[FleetSpan],
    costs: list[Row],
    open_alerts: dict[str, int],
    now: datetime,
) -> list[Row]:
    """Every subaccount: today's traffic and health, open alerts, cost this month, 24 h of
    attempts per hour (the sparkline), from the spans that together cover the day and the
    last 24 hours."""
    day = _day_start(now)
    first_slot = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    sums: dict[str, Row] = {}
    lines: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    hists: dict[str, dict[str, int]] = defaultdict(dict)
    max_ms: dict[str, int] = {}
    for span in spans:
        for r in span.hourly:
            account = r["account_sid"]
            slot = int((r["hour"] - first_slot).total_seconds() // 3600)
            if 0 <= slot < 24:
                lines[account][slot] += int(r["attempts"] or 0)
            if r["hour"] >= day:
                _add_hour(sums.setdefault(account, {}), r)
        for r in span.buckets:
            hist = hists[r["account_sid"]]
            hist[r["bucket"]] = hist.get(r["bucket"], 0) + int(r["n"])
            if r["max_ms"] is not None:
                max_ms[r["account_sid"]] = max(int(r["max_ms"]), max_ms.get(r["account_sid"], 0))
    return _fleet_rows(known, sums, lines, hists, max_ms, costs, open_alerts)


def _add_hour(total: Row, hour: Row) -> None:
    for name in ("attempts", "answered", "talk_seconds", "short_calls"):
        total[name] = total.get(name, 0) + int(hour[name] or 0)
    for name in ("cps_peak", "cps_limit"):
        if hour[name] is not None:
            total[name] = max(hour[name], total.get(name) or 0)


def _fleet_rows(
    known: list[Row],
    sums: dict[str, Row],
    lines: dict[str, list[int]],
    hists: dict[str, dict[str, int]],
    max_ms: dict[str, int],
    cost: list[Row],
    open_alerts: dict[str, int],
) -> list[Row]:
    limits = {r["account_sid"]: r["cps_limit"] for r in known}
    names = {r["account_sid"]: r["name"] for r in known}
    costs = {r["account_sid"]: r for r in cost}
    out = []
    for account in sorted(set(names) | set(sums)):
        s = sums.get(account, {})
        limit = limits.get(account) or s.get("cps_limit") or 1.0
        out.append(
            {
                "account_sid": account,
                "name": names.get(account, account),
                "calls_today": int(s.get("attempts") or 0),
                "answered_today": int(s.get("answered") or 0),
                "asr": _ratio(s.get("answered"), s.get("attempts")),
                "acd_s": _ratio(s.get("talk_seconds"), s.get("answered")),
                "short_call_ratio": _ratio(s.get("short_calls"), s.get("answered")),
                "queue_time_p95_ms": quantile(hists[account], 95, max_ms.get(account))
                if account in hists
                else None,
                "cps_peak": int(s.get("cps_peak") or 0),
                "cps_limit": float(limit),
                "cps_utilisation": _ratio(s.get("cps_peak") or 0, limit),
                "open_alerts": int(open_alerts.get(account, 0)),
                "cost_month": json_value(costs[account]["cost"]) if account in costs else "0",
                "currency": costs[account]["currency"] if account in costs else None,
                "sparkline": lines[account],
            }
        )
    return out


def lights(row: Row, limits: HealthLimits) -> dict[str, str]:
    """Per health rule: ``ok``, ``bad``, or ``none`` (too few calls to judge)."""
    enough = row["calls_today"] >= limits.min_calls

    def judge(value: float | None, ok: bool) -> str:
        return "none" if value is None or not enough else ("ok" if ok else "bad")

    asr, acd, short = row["asr"], row["acd_s"], row["short_call_ratio"]
    p95, cps = row["queue_time_p95_ms"], row["cps_utilisation"]
    return {
        "asr": judge(asr, asr is not None and asr >= limits.asr_min),
        "acd": judge(acd, acd is not None and acd > limits.acd_min_s),
        "short_calls": judge(short, short is not None and short <= limits.short_call_ratio_max),
        "queue_time": judge(p95, p95 is not None and p95 <= limits.queue_time_p95_max_ms),
        "cps": "none" if cps is None else ("ok" if cps < limits.cps_utilisation_max else "bad"),
    }


_SERIES_COLUMNS = (
    "attempts",
    "answered",
    "asr",
    "ner",
    "acd_s",
    "short_call_ratio",
    "queue_time_p50_ms",
    "queue_time_p95_ms",
    "cps_peak",
    "cps_limit",
    "calls_created",
    "trunk_cps_rejections",
    "attestation",
    "debugger_errors",
    "caller_id_top_share",
)


def series(cur: Cursor, account: str, range_name: str, now: datetime) -> dict[str, Any]:
    """One subaccount's (or ``ISV``'s) rollup over a range, per period and direction group;
    every period of the range is present (missing ones with no values)."""
    chosen = RANGES[range_name]
    end = _truncate(now, chosen.unit)
    start = end - chosen.span + chosen.step
    # An hour or longer rolls up the hourly rollup, the same rows as rolling up the minutes.
    # The subaccount's rows are read once (the macro would scan its source once per part),
    # bounded by literals, which DuckLake prunes files by.
    source = "health_minute" if chosen.unit == "minute" else "health_hour"
    rows_of = f"series_{uuid.uuid4().hex}"
    cur.execute(
        f"CREATE TEMP TABLE {rows_of} AS SELECT * FROM {source} "
        f"WHERE account_sid = {_text(account)} AND window_start >= {sql_literal(start)}"
    )
    try:
        rows = _rows(
            cur,
            f"SELECT period, direction_group, {', '.join(_SERIES_COLUMNS)} "
            f"FROM health_rollup_of('temp.main.{rows_of}', '{chosen.unit}') "
            "ORDER BY period, direction_group",
            [],
        )
    finally:
        cur.execute(f"DROP TABLE temp.main.{rows_of}")
    periods = []
    at = start
    while at <= end:
        periods.append(at)
        at += chosen.step
    groups: dict[str, dict[datetime, Row]] = defaultdict(dict)
    for r in rows:
        groups[r["direction_group"]][r["period"]] = r
    return {
        "account_sid": account,
        "range": range_name,
        "unit": chosen.unit,
        "periods": [json_value(p) for p in periods],
        "groups": {
            group: [_series_point(by_period.get(p)) for p in periods]
            for group, by_period in sorted(groups.items())
        },
    }


def _series_point(row: Row | None) -> Row:
    if row is None:
        return {name: None for name in _SERIES_COLUMNS}
    return {name: json_value(row[name]) for name in _SERIES_COLUMNS}


def _text(value: str) -> str:
    """A string as a SQL literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _truncate(now: datetime, unit: str) -> datetime:
    if unit == "minute":
        return now.replace(second=0, microsecond=0)
    if unit == "hour":
        return now.replace(minute=0, second=0, microsecond=0)
    return _day_start(now)


def isv_top(cur: Cursor, range_name: str, now: datetime, limit: int = 10) -> list[Row]:
    """The subaccounts that created the most calls over the range, with their CPS peak and
    their share of the ISV's calls."""
    since = now - RANGES[range_name].span
    rows = _rows(
        cur,
        "SELECT h.account_sid, any_value(t.name) AS name, sum(h.calls_created) AS calls_created, "
        "max(h.cps_peak) AS cps_peak FROM health_minute AS h "
        "LEFT JOIN tenants AS t USING (account_sid) "
        "WHERE h.window_start >= ? AND h.account_sid <> 'ISV' GROUP BY h.account_sid "
        "ORDER BY calls_created DESC, h.account_sid LIMIT ?",
        [since, limit],
    )
    total = cur.execute(
        "SELECT sum(calls_created) FROM health_minute WHERE window_start >= ? "
        "AND account_sid <> 'ISV'",
        [since],
    ).fetchone()
    all_calls = int(total[0] or 0) if total else 0
    return [
        {
            "account_sid": r["account_sid"],
            "name": r["name"] or r["account_sid"],
            "calls_created": int(r["calls_created"] or 0),
            "cps_peak": int(r["cps_peak"] or 0),
            "share": _ratio(r["calls_created"], all_calls),
        }
        for r in rows
    ]


def cps_recommendations(cur: Cursor, days: int) -> list[Row]:
    """The warehouse's CPS recommendation (QueueTime p95 at or under 5 s) over the last
    ``days``, for the ISV and every subaccount, the ISV first, then by calls."""
    rows = _rows(
        cur,
        "SELECT account_sid, name, configured_cps, recommended_cps, peak_cps, calls "
        "FROM cps_recommendation_for(5, ?) ORDER BY account_sid <> 'ISV', calls DESC, account_sid",
        [days],
    )
    return [
        {
            "account_sid": r["account_sid"],
            "name": r["name"] or r["account_sid"],
            "configured_cps": None if r["configured_cps"] is None else float(r["configured_cps"]),
            "recommended_cps": None if r["recommended_cps"] is None else int(r["recommended_cps"]),
            "peak_cps": int(r["peak_cps"]),
            "calls": int(r["calls"]),
        }
        for r in rows
    ]


_CALL_COLUMNS = (
    "call_sid, call_time, status, answered, direction, from_number, to_number, "
    "call_duration_s, billed_minutes, cost, price_unit, call_type, queue_time_ms, pdd_ms, "
    "sip_response_code, last_sip_response_num, disconnected_by, attestation, stir_verstat, "
    "answered_by, insights_state, tags, trunk_cps_rejection"
)


def calls(cur: Cursor, account: str, limit: int, offset: int) -> list[Row]:
    """A subaccount's latest calls (newest first), each with its status callbacks."""
    rows = _rows(
        cur,
        f"SELECT {_CALL_COLUMNS} FROM calls WHERE account_sid = ? "
        "ORDER BY call_time DESC, call_sid LIMIT ? OFFSET ?",
        [account, limit, offset],
    )
    sids = [r["call_sid"] for r in rows]
    events: dict[str, list[Row]] = defaultdict(list)
    if sids:
        for e in _rows(
            cur,
            "SELECT call_sid, event_time, call_status, sequence_number, sip_response_code, "
            "call_duration FROM call_events WHERE account_sid = ? "
            "AND list_contains(?::VARCHAR[], call_sid) "
            "ORDER BY call_sid, sequence_number NULLS LAST, event_time",
            [account, sids],
        ):
            sid = e.pop("call_sid")
            events[sid].append({k: json_value(v) for k, v in e.items()})
    return [
        {**{k: json_value(v) for k, v in r.items()}, "callbacks": events[r["call_sid"]]}
        for r in rows
    ]


_OPEN = "state NOT IN ('resolved', 'inactive')"
_LATEST = (
    "SELECT *, row_number() OVER (PARTITION BY account_sid, rule, direction_group "
    "ORDER BY changed_at DESC, received_at DESC) AS newest FROM alerts WHERE true"
)


def _open_alert_counts(cur: Cursor, accounts: frozenset[str] | None) -> list[Row]:
    only, args = _only(accounts)
    return _rows(
        cur,
        f"SELECT account_sid, count(*) AS n FROM ({_LATEST}{only}) "
        f"WHERE newest = 1 AND {_OPEN} GROUP BY ALL",
        args,
    )


_ALERT_COLUMNS = (
    "alert_id, account_sid, changed_at, rule, state, severity, direction_group, window_start, "
    "value, threshold, message"
)


def alerts(
    cur: Cursor,
    accounts: frozenset[str] | None,
    *,
    open_only: bool,
    limit: int,
    offset: int,
) -> list[Row]:
    """Alert state changes, newest first; ``open_only``: the latest change of each alert
    that is still pending or firing."""
    only, args = _only(accounts)
    if open_only:
        sql = (
            f"SELECT {_ALERT_COLUMNS} FROM ({_LATEST}{only}) WHERE newest = 1 AND {_OPEN} "
            "ORDER BY changed_at DESC, alert_id LIMIT ? OFFSET ?"
        )
    else:
        sql = (
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE true{only} "
            "ORDER BY changed_at DESC, alert_id LIMIT ? OFFSET ?"
        )
    return [
        {k: json_value(v) for k, v in r.items()} for r in _rows(cur, sql, [*args, limit, offset])
    ]


def billing(
    cur: Cursor, month: date, accounts: frozenset[str] | None, *, parent: bool
) -> dict[str, Any]:
    """A month's billing lines per subaccount (and the parent's, for operators) and the
    reconciliation of each day against Twilio's usage records."""
    only, args = _only(accounts, "b.account_sid")
    scopes = "('subaccount', 'parent')" if parent else "('subaccount')"
    lines = _rows(
        cur,
        "SELECT b.scope, b.account_sid, t.name, b.direction, b.call_type, b.currency, b.calls, "
        "b.answered, b.talk_seconds, b.billed_minutes, b.cost, b.estimated_cost, "
        "b.estimated_calls, b.estimated FROM billing_monthly AS b "
        "LEFT JOIN tenants AS t ON t.account_sid = b.account_sid "
        f"WHERE b.month = ? AND b.scope IN {scopes}{only} "
        "ORDER BY b.scope DESC, b.account_sid, b.direction, b.call_type, b.currency",
        [month, *args],
    )
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    only, args = _only(accounts)
    days = _rows(
        cur,
        "SELECT account_sid, day, our_minutes, twilio_minutes, minutes_diff, our_cost, "
        "twilio_cost, cost_diff, estimated, status, flagged FROM usage_reconciliation "
        f"WHERE day >= ? AND day < ?{only} ORDER BY day, account_sid",
        [month, following, *args],
    )
    return {
        "month": month.strftime("%Y-%m"),
        "lines": [{k: json_value(v) for k, v in r.items()} for r in lines],
        "totals": _totals(lines),
        "reconciliation": [{k: json_value(v) for k, v in r.items()} for r in days],
    }


def _totals(lines: Iterable[Row]) -> list[Row]:
    totals: dict[tuple[str, str, str], Row] = {}
    for line in lines:
        key = (line["scope"], line["account_sid"], line["currency"])
        total = totals.setdefault(
            key,
            {
                "scope": line["scope"],
                "account_sid": line["account_sid"],
                "name": line["name"],
                "currency": line["currency"],
                "calls": 0,
                "billed_minutes": 0,
                "cost": Decimal(0),
                "estimated": False,
            },
        )
        total["calls"] += int(line["calls"])
        total["billed_minutes"] += int(line["billed_minutes"])
        total["cost"] += line["cost"]
        total["estimated"] = total["estimated"] or bool(line["estimated"])
    return [{k: json_value(v) for k, v in t.items()} for t in totals.values()]
