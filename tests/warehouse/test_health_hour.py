"""health_hour, the hourly rollup the sink keeps: always its stored minutes merged."""

import random
from datetime import datetime, timedelta

import duckdb
from msgspec.structs import replace

from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import ACCOUNT_A, ACCOUNT_B, health, iso, records
from tests.warehouse.hourly_check import assert_hours_match_minutes
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from warehouse.lake import open_lake
from warehouse.schema import migrate
from warehouse.sink import WarehouseSink


def _window(rng: random.Random, account: str, minute: int, group: str, version: int) -> Envelope:
    """A random state of a window; a higher ``version`` is received later (it wins)."""
    attempts = rng.randint(0, 12)
    envelope = health(
        account,
        minute,
        attempts,
        rng.randint(0, attempts),
        {str(rng.randint(-1, 900)): rng.randint(1, 5) for _ in range(rng.randint(0, 4))},
        direction_group=group,
        cps_peak=rng.randint(0, 5),
        queue_time_max_ms=rng.randint(0, 20_000),
        short_calls=rng.randint(0, 2),
        attestation={k: rng.randint(0, 3) for k in rng.sample(["A", "B", "C"], rng.randint(0, 2))},
        debugger_errors={str(rng.choice([32001, 11200])): rng.randint(1, 4)}
        if rng.random() < 0.3
        else {},
        from_numbers={f"+{n}": rng.randint(1, 9) for n in range(rng.randint(0, 3))},
        late_events=version,
    )
    received = datetime.fromisoformat(envelope.received_at) + timedelta(seconds=version)
    return replace(envelope, received_at=iso(received))


async def test_the_hours_equal_their_minutes_under_replays_and_late_windows(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    """Random windows over three days in random batches: first states, later states of some
    (late events), replays of earlier batches, older copies arriving after newer ones. After
    every batch, health_hour is the stored minutes merged, and its rollups by hour and day
    equal health_rollup's."""
    rng = random.Random(14)
    windows = [
        (account, minute, group)
        for account in (ACCOUNT_A, ACCOUNT_B, "ISV")
        for minute in rng.sample(range(3 * 24 * 60), 60)
        for group in rng.sample(["outbound", "inbound"], rng.randint(1, 2))
    ]
    sent: list[Envelope] = []
    sink = WarehouseSink(lake, bus, flush_interval_s=3600)
    for _ in range(8):
        batch = [
            _window(rng, *window, version=rng.randint(0, 5))
            for window in rng.sample(windows, rng.randint(5, 60))
        ]
        if sent:
            batch += rng.sample(sent, min(len(sent), rng.randint(0, 40)))  # replays
        sent += batch
        await sink.handle(records(batch))
        await sink.flush()
        assert_hours_match_minutes(lake)
    assert lake.sql("SELECT count(*) FROM health_hour").fetchone() != (0,)


async def test_a_replayed_batch_writes_no_hour(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    rng = random.Random(3)
    batch = [_window(rng, ACCOUNT_A, minute, "outbound", 0) for minute in range(0, 300, 7)]
    sink = WarehouseSink(lake, bus, flush_interval_s=3600)
    await sink.handle(records(batch))
    await sink.flush()
    snapshot = lake.sql("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone()
    await sink.handle(records(batch, start=len(batch)))
    await sink.flush()
    assert lake.sql("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone() == (
        snapshot
    )
    assert_hours_match_minutes(lake)


async def test_the_migration_fills_the_hours_of_an_existing_lake(
    settings_factory: SettingsFactory, bus: InProcessBus
) -> None:
    rng = random.Random(16)
    batch = [
        _window(rng, account, minute, "outbound", 0)
        for account in (ACCOUNT_A, ACCOUNT_B)
        for minute in rng.sample(range(2 * 24 * 60), 80)
    ]
    con = open_lake(settings_factory())
    try:
        migrate(con, target=15)
        sink = WarehouseSink(con, bus, flush_interval_s=3600)
        await sink.handle(records(batch))
        await sink.flush()
        migrate(con)
        assert con.sql("SELECT count(*) FROM health_hour").fetchone() != (0,)
        assert_hours_match_minutes(con)
    finally:
        con.close()
