"""Health for history the stream never saw: ``health_minute`` computed in batch from the calls
and debugger events on a real DuckLake (warehouse/backfill.py, ``voicepulse backfill-health``)
equals what the processors compute for the same calls delivered on time; a window keeps one
row, a streamed row that is right stays, and running it again changes nothing."""

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest

from processors.engine import EngineConfig
from simulator import delivery, envelopes, generate
from tests.processors.batch_sql import rows_by_key
from tests.processors.streams import normalise, stream, tenants
from tests.warehouse.envelopes import ACCOUNT_A, health, records
from tests.warehouse.hourly_check import assert_hours_match_minutes
from voicepulse.bus import InProcessBus
from voicepulse.cli import main
from voicepulse.envelope import Envelope
from voicepulse.settings import Settings
from warehouse.backfill import BackfillResult, backfill_health, health_rows_sql
from warehouse.lake import open_lake
from warehouse.sink import WarehouseSink

CONFIG = EngineConfig(grace_s=120, call_timeout_s=600, horizon_s=3600)
DAY = datetime(2026, 11, 30)
"""The backfilled day (UTC); its traffic starts at 10:00."""

Rows = dict[tuple[str, str, str], dict[str, Any]]


def _traffic(seed: int) -> list[Envelope]:
    rng = random.Random(seed)
    start = int((DAY + timedelta(hours=10)).replace(tzinfo=UTC).timestamp())
    traffic = generate(rng, tenants(rng, [0, 2, 3, 5]), start, 150)
    return list(delivery(rng, envelopes(traffic), max_delay_s=20, duplicate_rate=0.1))


def _on_time(deliveries: list[Envelope]) -> tuple[Rows, list[Envelope]]:
    """The stream's rows for the calls delivered on time, and what it emitted (facts, rows)."""
    emitted: list[Envelope] = []
    rows, _ = stream(CONFIG, deliveries, emitted=emitted)
    return rows, emitted


async def _sink(lake: duckdb.DuckDBPyConnection, sent: list[Envelope]) -> None:
    bus = InProcessBus()
    await bus.start()
    sink = WarehouseSink(lake, bus, batch_size=100_000, flush_interval_s=3600)
    await sink.handle(records(sent))
    await sink.flush()
    await bus.stop()


def _latest_rows(emitted: list[Envelope]) -> list[Envelope]:
    """The last row envelope of each window, as the sink ends up keeping it."""
    latest = {e.id: e for e in emitted if e.type == "health-minute"}
    return list(latest.values())


def _backfill(lake: duckdb.DuckDBPyConnection) -> BackfillResult:
    return backfill_health(
        lake, DAY, DAY + timedelta(days=1), call_timeout_s=CONFIG.call_timeout_s, isv_cps_limit=1
    )


def _stored(lake: duckdb.DuckDBPyConnection, where: str = "true") -> Rows:
    return rows_by_key(lake.sql(f"SELECT * FROM health_minute WHERE {where}"))


def _compare(stored: Rows, expected: Rows) -> None:
    assert sorted(stored) == sorted(expected)
    for key, want in expected.items():
        got = stored[key]
        assert normalise(got | {"late_events": 0}) == normalise(want | {"late_events": 0}), key
        hist = {str(bucket): n for bucket, n in got["queue_time_hist"].items()}
        assert hist == want["queue_time_hist"], key


async def test_batch_rows_of_a_backfilled_day_equal_the_stream_on_time(
    lake: duckdb.DuckDBPyConnection,
    lake_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the calls and debugger events reached the warehouse (a backfill: no health row);
    the batch rows `voicepulse backfill-health` writes equal the rows the stream computes for
    the same traffic on time."""
    deliveries = _traffic(seed=41)
    streamed, emitted = _on_time(deliveries)
    facts = [e for e in emitted if e.type == "call-fact"]
    debugger = [e for e in deliveries if e.type == "debugger-event"]
    assert facts
    assert debugger
    await _sink(lake, [*facts, *debugger])
    assert _stored(lake) == {}

    monkeypatch.setenv("VOICEPULSE_PROCESSOR_CALL_TIMEOUT_S", str(CONFIG.call_timeout_s))
    data = str(lake_settings.data_dir)
    command = ["backfill-health", "--data-dir", data, "--from", "2026-11-30", "--to", "2026-12-01"]
    assert main(command) == 0
    said = capsys.readouterr().out
    assert "2026-11-30 00:00 to 2026-12-01 00:00 UTC" in said
    assert f"{len(streamed)} batch rows written ({len(streamed)} where the window had none)" in said
    _compare(_stored(lake), streamed)
    sources = lake.sql("SELECT DISTINCT source, closed FROM health_minute").fetchall()
    assert sources == [("batch", True)]
    again = _backfill(lake)
    assert (again.written, again.kept, again.removed) == (0, len(streamed), 0)


async def test_streamed_rows_that_are_right_stay_and_the_rest_is_recomputed(
    lake: duckdb.DuckDBPyConnection,
) -> None:
    """The stream saw one subaccount's calls only (the others came later, by the REST APIs or
    a replay past the horizon): its rows stay 'stream'; the other subaccounts' windows and the
    ISV windows they change become 'batch'; every window has one row; the rollups count each
    call once."""
    deliveries = _traffic(seed=42)
    complete, emitted = _on_time(deliveries)
    seen = next(e.account_sid for e in deliveries if e.type == "call-status")
    partial, partial_emitted = _on_time([e for e in deliveries if e.account_sid == seen])
    facts = [e for e in emitted if e.type == "call-fact"]
    debugger = [e for e in deliveries if e.type == "debugger-event"]
    # A streamed row of a window in which the warehouse has no call at all: not the batch's.
    empty = health(seen, 0, 5, 3, {}, t0=datetime(2026, 11, 30, 3, 0, tzinfo=UTC))
    await _sink(lake, [*facts, *debugger, *_latest_rows(partial_emitted), empty])
    assert len(_stored(lake)) == len(partial) + 1

    result = _backfill(lake)

    # The subaccount's own rows, and the ISV rows of windows no other subaccount had calls in.
    right = {key for key, row in partial.items() if normalise(row) == normalise(complete[key])}
    assert {key for key in partial if key[0] == seen} < right
    assert result.kept == len(right)
    assert result.written == len(complete) - len(right)
    assert result.removed == 1
    _compare(_stored(lake), complete)
    by_source = dict(lake.sql("SELECT source, count(*) FROM health_minute GROUP BY ALL").fetchall())
    assert by_source == {"stream": len(right), "batch": len(complete) - len(right)}
    assert set(_stored(lake, "source = 'stream'")) == right
    attempts = sum(row["attempts"] for key, row in complete.items() if key[0] != "ISV")
    hourly = lake.sql(
        "SELECT sum(attempts) FROM health_hourly WHERE account_sid <> 'ISV'"
    ).fetchone()
    assert hourly == (attempts,)
    assert_hours_match_minutes(lake)
    again = _backfill(lake)
    assert (again.written, again.removed) == (0, 0)


def test_only_settled_windows_are_backfilled(
    lake_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Windows the stream can still change (within the grace, the horizon and the lag of now)
    are not the batch's: a range of only those is refused."""
    data = str(lake_settings.data_dir)
    since = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    assert main(["backfill-health", "--data-dir", data, "--from", since]) == 2
    assert "nothing to do" in capsys.readouterr().err
    nowhere = str(lake_settings.data_dir.parent / "elsewhere")
    assert main(["backfill-health", "--data-dir", nowhere, "--from", "2026-11-30"]) == 1
    assert not (lake_settings.data_dir.parent / "elsewhere" / "catalog.sqlite").exists()


async def test_backfill_beside_a_running_sink(
    lake: duckdb.DuckDBPyConnection, lake_settings: Settings
) -> None:
    """The sink keeps writing today's windows (its own connection, flush after flush) while
    the batch rewrites the backfilled day: both commit (a conflict is retried), each window has
    one row, and the day is as the stream computes it."""
    deliveries = _traffic(seed=43)
    streamed, emitted = _on_time(deliveries)
    facts = [e for e in emitted if e.type == "call-fact"]
    await _sink(lake, [*facts, *(e for e in deliveries if e.type == "debugger-event")])
    today = [
        health(ACCOUNT_A, minute, 3, 2, {}, t0=datetime(2026, 12, 4, 9, 0, tzinfo=UTC))
        for minute in range(40)
    ]
    writer = open_lake(lake_settings)
    bus = InProcessBus()
    await bus.start()
    sink = WarehouseSink(writer, bus, batch_size=100_000, flush_interval_s=3600)
    try:

        async def keep_writing() -> None:
            for start in range(0, len(today), 4):
                await sink.handle(records(today[start : start + 4], start=start))
                await sink.flush()

        backfill = asyncio.to_thread(_backfill, lake)
        result, _ = await asyncio.gather(backfill, keep_writing())
    finally:
        await bus.stop()
        writer.close()
    assert result.written == len(streamed)
    _compare(_stored(lake, "window_start < '2026-12-01'"), streamed)
    assert len(_stored(lake, "window_start >= '2026-12-01'")) == len(today)


def test_a_time_counts_by_its_whole_second() -> None:
    """A creation at 10:00:59.6 counts in the 10:00 window's second 59, as the stream has it
    (Insights times carry milliseconds)."""
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE calls AS SELECT 'AC1' AS account_sid, 'outbound' AS direction_group, "
            "'completed' AS status, true AS terminal, true AS answered, '+1' AS from_number, "
            "NULL::VARCHAR AS attestation, TIMESTAMP '2026-11-30 10:00:59.6' AS created_at, "
            "TIMESTAMP '2026-11-30 10:01:30.9' AS ended_at, "
            "TIMESTAMP '2026-11-30 10:01:30.9' AS last_event_at, 30 AS call_duration_s, "
            "NULL::BIGINT AS queue_time_ms, false AS closed_by_timeout, "
            "false AS trunk_cps_rejection"
        )
        con.execute(
            "CREATE TABLE debugger_events (account_sid VARCHAR, level VARCHAR, "
            "error_code VARCHAR, event_time TIMESTAMP)"
        )
        rows = rows_by_key(con.sql(health_rows_sql("calls", "debugger_events", 600)))
    finally:
        con.close()
    created = rows[("AC1", "outbound", "2026-11-30T10:00:00+00:00")]
    assert created["cps_per_second"][59] == 1
    assert created["attempts"] == 0
    assert rows[("AC1", "outbound", "2026-11-30T10:01:00+00:00")]["attempts"] == 1
