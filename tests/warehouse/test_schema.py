"""Migrations: a warehouse made by an older release is upgraded in place, rows kept."""

from datetime import datetime

from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import ACCOUNT_A, T0, call_fact, health, records
from voicepulse.bus import InProcessBus
from warehouse.lake import open_lake
from warehouse.schema import Migration, current_version, migrate, migrations
from warehouse.sink import WarehouseSink

OLD_ROWS = [
    (ACCOUNT_A, "outbound", datetime(2026, 9, 1, 10, 0), 5, 4, datetime(2026, 9, 1, 10, 1)),
    (ACCOUNT_A, "inbound", datetime(2026, 9, 1, 10, 0), 2, 2, datetime(2026, 9, 1, 10, 1)),
]


async def test_a_warehouse_at_0001_is_upgraded_in_place_without_losing_rows(
    settings_factory: SettingsFactory, bus: InProcessBus
) -> None:
    settings = settings_factory()
    con = open_lake(settings)
    try:
        assert migrate(con, target=1) == 1
        con.executemany("INSERT INTO health_minute VALUES (?, ?, ?, ?, ?, ?)", OLD_ROWS)
    finally:
        con.close()

    con = open_lake(settings)
    try:
        latest = migrations()[-1].version
        assert latest >= 4
        assert migrate(con) == latest
        assert current_version(con) == latest
        assert migrate(con) == latest  # a second start applies nothing
        kept = con.sql(
            "SELECT account_sid, direction_group, window_start, attempts, answered, updated_at "
            "FROM health_minute ORDER BY direction_group DESC"
        ).fetchall()
        assert kept == OLD_ROWS
        sink = WarehouseSink(con, bus, flush_interval_s=3600)
        await sink.handle(records([health(ACCOUNT_A, 0, 3, 2, {"5": 3})]))
        await sink.flush()
        hourly = con.sql(
            "SELECT hour, sum(attempts), sum(answered) FROM health_hourly "
            "WHERE direction_group = 'outbound' GROUP BY ALL ORDER BY hour"
        ).fetchall()
        versions = con.sql("SELECT version FROM schema_version ORDER BY 1").fetchall()
    finally:
        con.close()
    assert hourly == [(datetime(2026, 9, 1, 10, 0), 5, 4), (datetime(2026, 10, 5, 12, 0), 3, 2)]
    assert [v for (v,) in versions] == [m.version for m in migrations()]


async def test_calls_stored_without_a_last_event_are_found_after_the_upgrade(
    settings_factory: SettingsFactory, bus: InProcessBus
) -> None:
    settings = settings_factory()
    con = open_lake(settings)
    try:
        migrate(con, target=6)
        con.execute(
            "INSERT INTO calls (call_sid, version, account_sid, call_time, status, terminal, "
            "answered, received_at) VALUES ('CA1', 1, ?, ?, 'completed', true, false, ?)",
            [ACCOUNT_A, T0.replace(tzinfo=None), T0.replace(tzinfo=None)],
        )
        migrate(con)
        sink = WarehouseSink(con, bus, flush_interval_s=3600)
        await sink.handle(records([call_fact("CA1", 2)]))
        await sink.flush()
        stored = con.sql("SELECT version FROM calls").fetchall()
    finally:
        con.close()
    assert stored == [(2,)]


def test_a_migration_numbered_below_one_applied_is_applied_too(
    settings_factory: SettingsFactory,
) -> None:
    """Two lines of work each added a migration; a lake that took the higher number first
    (its line landed first) still gets the lower one, and nothing runs twice."""
    shipped = migrations()
    last = shipped[-1].version
    first_line = Migration(last + 2, "first", "CREATE TABLE gap_first (n INTEGER);")
    second_line = Migration(last + 1, "second", "CREATE TABLE gap_second (n INTEGER);")
    con = open_lake(settings_factory())
    try:
        assert migrate(con, available=[*shipped, first_line]) == last + 2
        assert migrate(con, available=[*shipped, second_line, first_line]) == last + 2
        tables = {t for (t,) in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
        versions = con.sql("SELECT version FROM schema_version ORDER BY applied_at").fetchall()
    finally:
        con.close()
    assert {"gap_first", "gap_second"} <= tables
    assert [v for (v,) in versions][-2:] == [last + 2, last + 1]


def test_a_lake_that_made_call_states_first_gets_the_timestamp_flag_on_both_tables(
    settings_factory: SettingsFactory,
) -> None:
    """0013 (calls.timestamp_in_future) landed after 0015 (call_states, a copy of calls'
    columns) was applied somewhere: applied late, it adds the column to both."""
    shipped = migrations()
    con = open_lake(settings_factory())
    try:
        migrate(con, available=[m for m in shipped if m.version != 13])
        migrate(con, available=shipped)
        columns = con.sql(
            "SELECT table_name FROM duckdb_columns() WHERE column_name = 'timestamp_in_future'"
        ).fetchall()
    finally:
        con.close()
    assert sorted(t for (t,) in columns) == ["call_states", "calls"]
