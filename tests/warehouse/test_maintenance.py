"""DuckLake upkeep: small files merged, old snapshots expired, rows unchanged; data inlining."""

import duckdb
import pytest

from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import call_fact, records
from voicepulse.bus import InProcessBus
from voicepulse.settings import Settings
from warehouse.lake import open_lake
from warehouse.maintenance import Maintenance, maintain
from warehouse.setup import build_sink
from warehouse.sink import WarehouseSink


def _files(con: duckdb.DuckDBPyConnection) -> int:
    row = con.sql("SELECT count(*) FROM ducklake_list_files('lake', 'calls')").fetchone()
    return int(row[0]) if row else 0


def _calls(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.sql("SELECT call_sid, version, cost FROM calls ORDER BY 1").fetchall()


async def _small_batches(sink: WarehouseSink, count: int) -> None:
    for i in range(count):
        await sink.handle(records([call_fact(f"CA{i:03d}", 1), call_fact(f"CA{i:03d}", 2)]))
        await sink.flush()


async def test_maintenance_merges_small_files_and_keeps_every_row(
    bus: InProcessBus, settings_factory: SettingsFactory
) -> None:
    settings = settings_factory(warehouse_inline_row_limit=0, warehouse_writer_threads=1)
    sink, lake = build_sink(settings, bus, {})
    try:
        assert lake.sql("SELECT current_setting('threads')").fetchone() == (1,)
        await _check_merge(sink, lake)
    finally:
        lake.close()


async def _check_merge(sink: WarehouseSink, lake: duckdb.DuckDBPyConnection) -> None:
    await _small_batches(sink, 20)
    before_rows, before_files = _calls(lake), _files(lake)
    snapshots = lake.sql("SELECT count(*) FROM ducklake_snapshots('lake')").fetchone()
    assert before_files >= 20

    maintain(lake, retention_s=0)

    assert _calls(lake) == before_rows
    assert _files(lake) < before_files / 5
    after = lake.sql("SELECT count(*) FROM ducklake_snapshots('lake')").fetchone()
    assert after is not None
    assert snapshots is not None
    assert after[0] < snapshots[0]


def test_maintenance_runs_only_when_due(lake: duckdb.DuckDBPyConnection) -> None:
    schedule = Maintenance(interval_s=3600, retention_s=3600)
    assert not schedule.run_if_due(lake)
    due = Maintenance(interval_s=0, retention_s=3600)
    assert due.run_if_due(lake)
    assert due.runs == 1


async def test_inlined_small_batches_make_no_files_until_flushed(
    settings_factory: SettingsFactory, bus: InProcessBus
) -> None:
    settings = settings_factory(warehouse_inline_row_limit=100)
    sink, con = build_sink(settings, bus, {})
    try:
        await _small_batches(sink, 10)
        reader = open_lake(settings, read_only=True)
        try:
            assert len(_calls(reader)) == 10
            assert {v for _, v, _ in _calls(reader)} == {2}
        finally:
            reader.close()
        assert _files(con) == 0
        maintain(con, retention_s=0)
        assert _files(con) >= 1
        assert len(_calls(con)) == 10
    finally:
        con.close()


def test_a_failed_maintenance_is_logged_and_the_sink_goes_on(
    lake: duckdb.DuckDBPyConnection, lake_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    reader = open_lake(lake_settings, read_only=True)  # a connection that may not maintain
    try:
        due = Maintenance(interval_s=0, retention_s=3600)
        assert not due.run_if_due(reader)
    finally:
        reader.close()
    assert due.runs == 0
    assert "lake maintenance failed" in caplog.text
