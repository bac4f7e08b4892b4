"""``health_minute.closed``: the processor's rows through the sink say which rows are final, and
rows stored before the column existed are backfilled from what the lake knows."""

from datetime import datetime, timedelta

import duckdb
from msgspec.structs import replace

from processors.isv import IsvAggregator
from tests.conftest import SettingsFactory
from tests.processors.closing import OTHER, run
from tests.processors.sources import SUB
from tests.warehouse.envelopes import records
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.messages import ISV_ACCOUNT
from warehouse.lake import open_lake
from warehouse.schema import migrate
from warehouse.sink import WarehouseSink


def _with_isv(batch: list[Envelope], aggregator: IsvAggregator) -> list[Envelope]:
    changed = {aggregator.add(row) for row in batch}
    return [*batch, *(aggregator.row(key) for key in changed if key is not None)]


async def test_rows_land_open_then_closed(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    sink = WarehouseSink(lake, bus, flush_interval_s=3600)
    steps = run()
    aggregator = IsvAggregator(cps_limit=5.0)
    seen = []
    offset = 0
    for batch in (steps.interim, steps.first_closed, steps.second_closed, steps.late):
        sent = _with_isv(batch, aggregator)
        await sink.handle(records(sent, start=offset))
        await sink.flush()
        offset += len(sent)
        seen.append(
            lake.sql(
                "SELECT account_sid, attempts, late_events, closed FROM health_minute ORDER BY 1"
            ).fetchall()
        )
    interim, first, second, late = seen
    assert interim == [(SUB, 1, 0, False), (OTHER, 1, 0, False), (ISV_ACCOUNT, 2, 0, False)]
    assert first == [(SUB, 1, 0, True), (OTHER, 1, 0, False), (ISV_ACCOUNT, 2, 0, False)]
    assert second == [(SUB, 1, 0, True), (OTHER, 1, 0, True), (ISV_ACCOUNT, 2, 0, True)]
    assert late == [(SUB, 1, 2, True), (OTHER, 1, 0, True), (ISV_ACCOUNT, 2, 2, True)]


async def test_a_row_that_does_not_say_is_stored_open(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    row = run().first_closed[0]
    fields = {name: value for name, value in row.fields.items() if name != "closed"}
    sink = WarehouseSink(lake, bus, flush_interval_s=3600)
    await sink.handle(records([replace(row, fields=fields)]))
    await sink.flush()
    assert lake.sql("SELECT closed FROM health_minute").fetchall() == [(False,)]


_START = datetime(2026, 9, 1, 10, 0)
_A, _B, _C = ("AC" + c * 32 for c in "abc")


def test_rows_stored_before_the_column_are_closed_only_once_an_hour_of_events_followed(
    settings_factory: SettingsFactory,
) -> None:
    con = open_lake(settings_factory())
    try:
        migrate(con, target=10)
        rows = [
            (_A, _START - timedelta(hours=1)),
            (ISV_ACCOUNT, _START - timedelta(hours=1)),  # every subaccount row closed: closed
            (_A, _START),  # A has an event 3780 s after this window's start: closed
            (_A, _START + timedelta(minutes=1)),  # one second short of that: open
            (_B, _START),  # B has no later event: open
            (_C, _START),  # C's only later event is a debugger event: closed
            (ISV_ACCOUNT, _START),  # not every subaccount row is closed: open
            (ISV_ACCOUNT, _START + timedelta(minutes=1)),
        ]
        con.executemany(
            "INSERT INTO health_minute (account_sid, direction_group, window_start, attempts, "
            "answered, updated_at) VALUES (?, 'outbound', ?, 1, 1, ?)",
            [(account, start, start) for account, start in rows],
        )
        later = _START + timedelta(seconds=3780)
        con.execute(
            "INSERT INTO call_events (event_id, account_sid, call_sid, call_status, event_time, "
            "received_at) VALUES ('CA1:9', ?, 'CA1', 'completed', ?, ?)",
            [_A, later, later],
        )
        con.execute(
            "INSERT INTO debugger_events (sid, account_sid, event_time, received_at) "
            "VALUES ('NO1', ?, ?, ?)",
            [_C, later, later],
        )
        migrate(con)
        stored = con.sql(
            "SELECT account_sid, window_start, closed FROM health_minute ORDER BY 1, 2"
        ).fetchall()
    finally:
        con.close()
    assert stored == [
        (_A, _START - timedelta(hours=1), True),
        (_A, _START, True),
        (_A, _START + timedelta(minutes=1), False),
        (_B, _START, False),
        (_C, _START, True),
        (ISV_ACCOUNT, _START - timedelta(hours=1), True),
        (ISV_ACCOUNT, _START, False),
        (ISV_ACCOUNT, _START + timedelta(minutes=1), False),
    ]
