"""The cps_recommendation view (migration 0012) against a plain queue simulation."""

import random
from datetime import datetime, timedelta

import duckdb

ACME = "AC" + "a" * 32
BETA = "AC" + "b" * 32
GAMMA = "AC" + "c" * 32
T0 = datetime(2026, 11, 2, 10, 0)


def recommend(per_second: dict[int, int], limit_s: float = 5.0) -> int | None:
    """The plain definition: a FIFO queue drained at c calls a second, second by second; the
    least c under which at least 95 % of the calls wait at most ``limit_s`` (the calls of a
    second wait as long as the last of them)."""
    if not per_second:
        return None
    first, last, total = min(per_second), max(per_second), sum(per_second.values())
    for cps in range(1, max(per_second.values()) + 1):
        backlog, in_time = 0, 0
        for second in range(first, last + 1):
            calls = per_second.get(second, 0)
            backlog = max(0, backlog + calls - cps)
            if calls and backlog <= limit_s * cps:
                in_time += calls
        if in_time >= 0.95 * total:
            return cps
    raise AssertionError("the busiest second's count always keeps up")


def _store(lake: duckdb.DuckDBPyConnection, account: str, per_second: dict[int, int],
           *, direction: str = "outbound", cps_limit: float = 1.0) -> None:  # fmt: skip
    """One health_minute row per minute that has calls (as the processors write them), all in
    one transaction (one DuckLake snapshot)."""
    minutes: dict[int, list[int]] = {}
    for second, calls in per_second.items():
        minutes.setdefault(second // 60, [0] * 60)[second % 60] += calls
    lake.execute("BEGIN")
    for minute, counts in sorted(minutes.items()):
        start = T0 + timedelta(minutes=minute)
        lake.execute(
            "INSERT INTO health_minute (account_sid, direction_group, window_start, window_end,"
            " attempts, answered, updated_at, calls_created, cps_per_second, cps_limit)"
            " VALUES (?, ?, ?, ?, 0, 0, now(), ?, ?, ?)",
            [account, direction, start, start + timedelta(minutes=1), sum(counts), counts,
             cps_limit],
        )  # fmt: skip
    lake.execute("COMMIT")


def _view(
    lake: duckdb.DuckDBPyConnection, query: str = "FROM cps_recommendation"
) -> dict[str, dict[str, object]]:
    relation = lake.sql(query)
    return {row[0]: dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()}


def test_a_burst_needs_the_cps_that_drains_it_within_the_limit(
    lake: duckdb.DuckDBPyConnection,
) -> None:
    day31 = 31 * 86400
    bursts = {day31 + 60 * minute: 12 for minute in range(10)}  # 12 calls at once a minute
    steady = {day31 + second: 1 for second in range(600)}  # one call a second, all along
    _store(lake, ACME, {0: 40, **bursts})  # 40 at once 31 days before: out of the span
    _store(lake, BETA, steady)
    _store(lake, BETA, {day31 + s: 50 for s in range(60)}, direction="inbound")  # no CPS
    lake.execute("INSERT INTO tenants VALUES (?, 'Acme Dental', NULL, 1, now())", [ACME])
    rows = _view(lake)
    # 12 calls at 2 a second: the last waits 5 s, within the limit; at 1 a second, 11 s.
    assert rows[ACME]["recommended_cps"] == recommend(bursts) == 2
    assert rows[ACME]["peak_cps"] == 12
    assert rows[ACME]["calls"] == 120
    assert rows[ACME]["configured_cps"] == 1.0
    assert rows[ACME]["name"] == "Acme Dental"
    assert rows[BETA]["recommended_cps"] == 1
    assert rows[BETA]["configured_cps"] == 1.0  # from its health rows: not in the tenants table
    assert rows[ACME]["queue_limit_s"] == 5.0
    assert _view(lake, "FROM cps_recommendation_for(5, 32)")[ACME]["peak_cps"] == 40


def test_the_view_agrees_with_the_queue_simulation_on_random_traffic(
    lake: duckdb.DuckDBPyConnection,
) -> None:
    rng = random.Random(20261204)
    traffic: dict[str, dict[int, int]] = {}
    for account, rate in ((ACME, 0.8), (BETA, 2.5), (GAMMA, 6.0)):
        seconds: dict[int, int] = {}
        for second in range(1200):
            if (second // 300) % 2 == 1 and account != GAMMA:
                continue  # five quiet minutes in every ten: windows without a row
            calls = sum(1 for _ in range(12) if rng.random() < rate / 12)
            if rng.random() < 0.01:
                calls += rng.randint(10, 40)  # a dialer's burst
            if calls:
                seconds[second] = calls
        traffic[account] = seconds
        _store(lake, account, seconds)
    isv: dict[int, int] = {}
    for seconds in traffic.values():
        for second, calls in seconds.items():
            isv[second] = isv.get(second, 0) + calls
    _store(lake, "ISV", isv, cps_limit=10.0)
    rows = _view(lake)
    for account, seconds in [*traffic.items(), ("ISV", isv)]:
        assert rows[account]["recommended_cps"] == recommend(seconds), account
    assert rows["ISV"]["configured_cps"] == 10.0
    assert rows["ISV"]["name"] == "all subaccounts (ISV)"
    # Another limit through the macro: a tighter one never asks for less.
    tight = _view(lake, "FROM cps_recommendation_for(1, 30)")
    for account, seconds in [*traffic.items(), ("ISV", isv)]:
        assert tight[account]["recommended_cps"] == recommend(seconds, 1.0), account
        assert int(str(tight[account]["recommended_cps"])) >= int(
            str(rows[account]["recommended_cps"])
        )
