"""health_hourly and health_daily: sums add, rates come from sums, percentiles from histograms."""

import math
import random
from typing import Any

import duckdb
import pytest
from msgspec.structs import replace

from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import ACCOUNT_A, ACCOUNT_B, health, records
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.messages import QUEUE_TIME_ALPHA, QUEUE_TIME_GAMMA
from warehouse.lake import open_lake
from warehouse.schema import migrate
from warehouse.sink import WarehouseSink


def _bucket(value: int) -> str:
    return "-1" if value == 0 else str(math.ceil(math.log(value) / math.log(QUEUE_TIME_GAMMA)))


def _hist(values: list[int]) -> dict[str, int]:
    hist: dict[str, int] = {}
    for v in values:
        hist[_bucket(v)] = hist.get(_bucket(v), 0) + 1
    return hist


def _exact(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered)) - 1]


async def test_hourly_percentiles_merge_the_minute_histograms(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    rng = random.Random(3)
    per_minute = [[int(rng.lognormvariate(6, 1.2)) for _ in range(40)] for _ in range(30)]
    per_minute[0][:5] = [0, 0, 0, 0, 0]
    envelopes = [health(ACCOUNT_A, m, 10, 7, _hist(v)) for m, v in enumerate(per_minute)]
    envelopes.append(health(ACCOUNT_B, 0, 4, 1, {}))
    sink = WarehouseSink(lake, bus, flush_interval_s=3600)
    await sink.handle(records(envelopes))
    await sink.flush()

    everything = [v for values in per_minute for v in values]
    row = lake.sql(
        "SELECT attempts, answered, asr, acd_s, queue_time_p50_ms, queue_time_p95_ms, "
        "queue_time_p99_ms FROM health_hourly WHERE account_sid = ?",
        params=[ACCOUNT_A],
    ).fetchone()
    assert row is not None
    attempts, answered, asr, acd, p50, p95, p99 = row
    assert (attempts, answered) == (300, 210)
    assert asr == pytest.approx(0.7)
    assert acd == pytest.approx(60.0)
    for estimate, p in ((p50, 0.5), (p95, 0.95), (p99, 0.99)):
        assert estimate == pytest.approx(_exact(everything, p), rel=QUEUE_TIME_ALPHA)
    daily = lake.sql(
        "SELECT account_sid, attempts, queue_time_p95_ms FROM health_daily ORDER BY 1"
    ).fetchall()
    assert daily[0][:2] == (ACCOUNT_A, 300)
    assert daily[0][2] == pytest.approx(p95)
    assert daily[1] == (ACCOUNT_B, 4, None)


def _with(envelope: Envelope, **fields: object) -> Envelope:
    return replace(envelope, fields={**envelope.fields, **fields})


async def test_rollups_merge_the_mixes_key_by_key(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    minutes = [
        _with(
            health(ACCOUNT_A, 0, 10, 7, {}),
            attestation={"A": 3, "none": 1},
            debugger_errors={"32001": 2},
            from_numbers={"+1": 6, "+2": 4},
        ),
        _with(
            health(ACCOUNT_A, 1, 10, 7, {}),
            attestation={"A": 1, "C": 2},
            debugger_errors={"32001": 1, "11200": 5},
            from_numbers={"+2": 8, "+3": 2},
        ),
    ]
    sink = WarehouseSink(lake, bus, flush_interval_s=3600)
    await sink.handle(records(minutes))
    await sink.flush()
    for view in ("health_hourly", "health_daily"):
        row = lake.sql(
            f"SELECT attestation, debugger_errors, debugger_warnings, caller_id_top_share "
            f"FROM {view}"
        ).fetchone()
        assert row == (
            {"A": 4, "C": 2, "none": 1},
            {"11200": 5, "32001": 3},
            None,
            pytest.approx(12 / 20),
        ), view


async def test_the_rollup_macro_gives_the_views_of_migration_0006_unchanged(
    settings_factory: SettingsFactory, bus: InProcessBus
) -> None:
    rng = random.Random(5)
    minutes = [
        _with(
            health(account, minute, attempts := rng.randint(1, 30), rng.randint(0, attempts), {}),
            queue_time_hist=_hist([int(rng.lognormvariate(6, 1.5)) for _ in range(attempts)]),
            attestation={"A": rng.randint(0, 3), "C": rng.randint(0, 2)},
            debugger_errors={str(rng.choice([32001, 11200])): rng.randint(1, 4)},
            from_numbers={f"+{n}": rng.randint(1, 9) for n in range(rng.randint(1, 3))},
        )
        for account in (ACCOUNT_A, ACCOUNT_B)
        for minute in rng.sample(range(0, 3 * 24 * 60), 40)
    ]
    con = open_lake(settings_factory())
    try:
        migrate(con, target=6)
        sink = WarehouseSink(con, bus, flush_interval_s=3600)
        await sink.handle(records(minutes))
        await sink.flush()
        before = [_view(con, view) for view in ("health_hourly", "health_daily")]
        migrate(con)
        after = [_view(con, view) for view in ("health_hourly", "health_daily")]
    finally:
        con.close()
    assert after == before
    assert len(before[0][1]) > 40
    assert len(before[1][1]) >= 6


def _view(
    con: duckdb.DuckDBPyConnection, view: str
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    described = con.sql(f"DESCRIBE {view}").fetchall()
    return described, con.sql(f"SELECT * FROM {view} ORDER BY ALL").fetchall()
