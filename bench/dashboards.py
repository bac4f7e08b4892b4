"""The dashboard's fleet page and a subaccount's 30-day series, against plain DuckDB queries.

    .venv/bin/python -m bench.dashboards [--accounts 1000] [--days 30] [--requests 50]

A DuckLake warehouse is filled with DuckDB (not through the pipeline) with one outbound health
row per subaccount and minute over the last ``--days`` days (1,000 x 30 days: 43.2 M rows),
plus the ``ISV`` rows. Then, in the same run:

- dashboard: the dashboard app on real uvicorn over loopback, an operator token, ``--requests``
  requests of ``/api/v1/fleet`` and of ``/api/v1/subaccounts/{sid}/series?range=30d``, timed by
  the server (``Server-Timing``) and by the client;
- baseline: the same numbers from plain DuckDB queries of the same lake, ``--requests`` times:
  the fleet's sums for today and the hourly series of one subaccount.

It prints p50 and p95 of both and the ratios.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx

from dashboards.app import create_app
from dashboards.reader import Reader
from dashboards.tokens import TokenStore
from ingest.server import HttpServerStage
from voicepulse.settings import Settings
from warehouse.lake import open_lake
from warehouse.schema import migrate
from warehouse.upsert import sql_literal

_MINUTES = """
INSERT INTO temp.main.chunk BY NAME
SELECT
    'AC' || lpad(to_hex(a), 32, '0') AS account_sid,
    'outbound' AS direction_group,
    TIMESTAMP '{start}' + to_minutes(m) AS window_start,
    TIMESTAMP '{start}' + to_minutes(m + 1) AS window_end,
    'AC' || repeat('f', 32) AS parent_account_sid,
    (a * 7 + m) % 9 AS attempts,
    ((a * 7 + m) % 9) * 7 // 10 AS answered,
    ((a * 7 + m) % 9) * 7 // 10 AS completed,
    ((a * 7 + m) % 9) - ((a * 7 + m) % 9) * 7 // 10 AS busy,
    0 AS no_answer, 0 AS failed, 0 AS canceled, 0 AS unknown,
    (((a * 7 + m) % 9) * 7 // 10) * (40 + a % 50) AS talk_seconds,
    (m % 13 = 0)::INT AS short_calls,
    (a * 7 + m) % 9 AS calls_created,
    NULL::BIGINT[] AS cps_per_second,
    1 + (a + m) % 2 AS cps_peak,
    1.0 AS cps_limit,
    (a * 7 + m) % 9 AS queue_time_count,
    ((a * 7 + m) % 9) * 700 AS queue_time_sum_ms,
    2000 + (a + m) % 3000 AS queue_time_max_ms,
    MAP {{-1: 1, 300 + (a + m) % 100: ((a * 7 + m) % 9)}} AS queue_time_hist,
    (m % 97 = 0)::INT AS trunk_cps_rejections,
    MAP {{'+1555' || lpad((a % 1000)::VARCHAR, 7, '0'): (a * 7 + m) % 9}} AS from_numbers,
    MAP {{'none': 0}} AS attestation,
    CASE WHEN m % 61 = 0 THEN MAP {{'32001': 1}} ELSE MAP {{}} END AS debugger_errors,
    MAP {{}}::MAP(VARCHAR, BIGINT) AS debugger_warnings,
    0 AS late_events,
    TIMESTAMP '{start}' + to_minutes(m + 2) AS updated_at,
    true AS closed,
    'stream' AS source
FROM (
    SELECT i // {accounts} AS m, i % {accounts} AS a
    FROM range({m0} * {accounts}, {m1} * {accounts}) AS rows(i)
)  -- in time order, then by subaccount
"""

_ISV = """
INSERT INTO temp.main.chunk BY NAME
SELECT 'ISV' AS account_sid, direction_group, window_start, any_value(window_end) AS window_end,
       NULL AS parent_account_sid, sum(attempts) AS attempts, sum(answered) AS answered,
       sum(completed) AS completed, sum(busy) AS busy, 0 AS no_answer, 0 AS failed,
       0 AS canceled, 0 AS unknown, sum(talk_seconds) AS talk_seconds,
       sum(short_calls) AS short_calls, sum(calls_created) AS calls_created,
       max(cps_peak) AS cps_peak, 100.0 AS cps_limit, sum(queue_time_count) AS queue_time_count,
       sum(queue_time_sum_ms) AS queue_time_sum_ms, max(queue_time_max_ms) AS queue_time_max_ms,
       sum(trunk_cps_rejections) AS trunk_cps_rejections, 0 AS late_events,
       max(updated_at) AS updated_at, true AS closed, 'stream' AS source
FROM temp.main.chunk GROUP BY direction_group, window_start
"""


def fill(
    settings: Settings, accounts: int, days: int, now: datetime, *, chunk_days: int = 3
) -> None:
    """A migrated lake with ``accounts`` x ``days`` of minute rows ending at ``now``, and their
    hourly rollup.

    Each ``chunk_days`` of minutes is made in a temporary table in time order (the subaccounts'
    rows, then the ISV's), then written in one insert, so files are by time as the sink writes
    them (a time filter skips other days' files), and its hours in another, merged by the
    lake's own ``health_hours_of`` (what the sink writes for them).
    """
    start = (now - timedelta(days=days)).replace(second=0, microsecond=0, tzinfo=None)
    con = open_lake(settings)
    try:
        migrate(con)
        con.execute(
            "INSERT INTO tenants SELECT 'AC' || lpad(to_hex(a), 32, '0'), 'Tenant ' || a, "
            "'AC' || repeat('f', 32), 1.0, now() FROM range(?) AS t(a)",
            [accounts],
        )
        for d in range(0, days, chunk_days):
            m0, m1 = d * 1440, min(days, d + chunk_days) * 1440
            con.execute("CREATE OR REPLACE TEMP TABLE chunk AS FROM health_minute LIMIT 0")
            con.execute(_MINUTES.format(start=start, accounts=accounts, m0=m0, m1=m1))
            con.execute(_ISV)
            con.execute("BEGIN")
            con.execute("INSERT INTO health_minute BY NAME SELECT * FROM temp.main.chunk")
            con.execute(
                "INSERT INTO health_hour BY NAME SELECT * FROM health_hours_of('temp.main.chunk') "
                "ORDER BY window_start, account_sid"
            )
            con.execute("COMMIT")
        con.execute("DROP TABLE temp.main.chunk")
    finally:
        con.close()


def _plain_fleet(con: duckdb.DuckDBPyConnection, day: datetime) -> None:
    con.execute(
        "SELECT account_sid, sum(attempts), sum(answered), sum(talk_seconds), "
        "sum(short_calls), max(cps_peak) FROM health_minute "
        f"WHERE window_start >= {sql_literal(day)} AND account_sid <> 'ISV' GROUP BY ALL"
    ).fetchall()


def _plain_series(con: duckdb.DuckDBPyConnection, account: str, since: datetime) -> None:
    con.execute(
        "SELECT date_trunc('day', window_start) AS d, sum(attempts), sum(answered), "
        f"sum(talk_seconds), max(cps_peak) FROM health_minute WHERE account_sid = '{account}' "
        f"AND window_start >= {sql_literal(since)} GROUP BY ALL ORDER BY d"
    ).fetchall()


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered), p95


def _time(run: object, n: int) -> list[float]:
    assert callable(run)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return out


async def _served(
    settings: Settings, token: str, paths: dict[str, str], n: int, ttl_s: float
) -> dict[str, tuple[list[float], list[float]]]:
    app = create_app(settings, reader=Reader(settings, ttl_s=ttl_s))
    stage = HttpServerStage("dashboard", app, "127.0.0.1", 0)
    await stage.start()
    results: dict[str, tuple[list[float], list[float]]] = {}
    try:
        base = f"http://127.0.0.1:{stage.port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
            for name, path in paths.items():
                server, client_side = [], []
                for _ in range(n):
                    t0 = time.perf_counter()
                    answer = await client.get(path)
                    client_side.append(time.perf_counter() - t0)
                    answer.raise_for_status()
                    timing = answer.headers["server-timing"]
                    server.append(float(timing.split("dur=")[1]) / 1000)
                results[name] = (server, client_side)
    finally:
        await stage.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    now = datetime.now(UTC)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="voicepulse-bench-dash-"))
    settings = Settings(data_dir=data_dir, demo=False)
    t0 = time.perf_counter()
    if not (data_dir / "catalog.sqlite").exists():
        fill(settings, args.accounts, args.days, now)
    print(
        f"lake: {args.accounts} subaccounts x {args.days} days of minutes "
        f"({args.accounts * args.days * 1440:,} rows) in {time.perf_counter() - t0:.1f} s"
    )
    account = "AC" + f"{7:x}".rjust(32, "0")
    store = TokenStore(settings.data_dir / "tokens.sqlite")
    token, _ = store.create("bench", operator=True)
    store.close()
    paths = {
        "fleet": "/api/v1/fleet?limit=1000",
        "subaccount 30d": f"/api/v1/subaccounts/{account}/series?range=30d",
    }
    runs = {
        f"cache {ttl:g} s": asyncio.run(_served(settings, token, paths, args.requests, ttl))
        for ttl in (0.0, settings.dashboard_cache_ttl_s)
    }
    con = open_lake(settings, read_only=True)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    since = (now - timedelta(days=30)).replace(tzinfo=None)
    plain = {
        "fleet": _time(lambda: _plain_fleet(con, day), args.requests),
        "subaccount 30d": _time(lambda: _plain_series(con, account, since), args.requests),
    }
    con.close()
    for name, samples in plain.items():
        b50, b95 = _quantiles(samples)
        print(f"{name:15s} plain DuckDB      p50 {b50 * 1000:8.1f} ms p95 {b95 * 1000:8.1f} ms")
        for run, served in runs.items():
            server, client_side = served[name]
            s50, s95 = _quantiles(server)
            c50, c95 = _quantiles(client_side)
            print(
                f"{name:15s} dashboard {run:7s} p50 {s50 * 1000:8.1f} ms p95 {s95 * 1000:8.1f} ms"
                f" (client p50 {c50 * 1000:.1f} ms p95 {c95 * 1000:.1f} ms; "
                f"first {server[0] * 1000:.0f} ms) | p95 ratio {s95 / b95:.2f}x"
            )


if __name__ == "__main__":
    main()
