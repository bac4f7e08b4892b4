"""The sink on a real DuckLake: idempotent upserts, highest version wins, poison messages."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import duckdb
import orjson
from msgspec.structs import replace

from tests.warehouse.envelopes import (
    ACCOUNT_A,
    ACCOUNT_B,
    T0,
    alert,
    call_fact,
    call_resource,
    call_status,
    debugger,
    health,
    insights,
    records,
    usage,
)
from voicepulse import topics
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.types import Record
from warehouse.sink import WarehouseSink
from warehouse.tables import TABLES


def _sink(lake: duckdb.DuckDBPyConnection, bus: InProcessBus) -> WarehouseSink:
    return WarehouseSink(lake, bus, batch_size=10_000, flush_interval_s=3600)


def _everything(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        spec.table: sorted(con.sql(f"SELECT * FROM {spec.table}").fetchall(), key=repr)
        for spec in TABLES
    }


def _mixed_traffic() -> list[Envelope]:
    return [
        call_fact("CA1", 1, status="ringing", duration=None, cost=None),
        call_fact("CA1", 2, cost=None),
        call_fact("CA1", 3),
        call_fact("CA2", 1, account=ACCOUNT_B, status="busy", duration=None, cost=None),
        call_status("CA1", 0, "initiated"),
        call_status("CA1", 1, "ringing"),
        call_status("CA1", 1, "ringing"),  # a Twilio retry: same id
        call_status("CA1", 3, "completed"),
        health(ACCOUNT_A, 0, 3, 2, {"10": 2, "-1": 1}),
        health(ACCOUNT_B, 0, 1, 0, {}),
        usage(ACCOUNT_A, "2026-10-05", "2", "0.0260"),
        usage(ACCOUNT_A, "2026-10-05", "3", "0.0390", pulled=6),  # a later pull of the same day
        insights("CA1", "complete"),
        insights("CA1", "partial"),  # arrives late: the complete summary stays
        call_resource("CA1", None),
        call_resource("CA1", "0.0260"),
        call_resource("CA1", None),  # an unrated copy never replaces the rated one
        debugger("NO1", "32001"),
        debugger("NO1", "32001"),
        alert("asr_low", "firing", 3),
        alert("asr_low", "resolved", 9),
    ]


async def test_batch_lands_in_every_table(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    sink = _sink(lake, bus)
    await sink.handle(records(_mixed_traffic()))
    await sink.flush()

    calls = lake.sql("SELECT call_sid, version, status, cost FROM calls ORDER BY 1").fetchall()
    assert calls == [("CA1", 3, "completed", Decimal("0.026000")), ("CA2", 1, "busy", None)]
    assert lake.sql("SELECT count(*) FROM call_events").fetchone() == (3,)
    hist = lake.sql(
        "SELECT queue_time_hist FROM health_minute WHERE account_sid = ?", params=[ACCOUNT_A]
    ).fetchone()
    assert hist == ({10: 2, -1: 1},)
    assert lake.sql("SELECT usage, cost FROM usage_records").fetchall() == [
        (Decimal("3.000000"), Decimal("0.039000"))
    ]
    summary = lake.sql("SELECT processing_state, tags FROM insights_summaries").fetchall()
    assert summary == [("complete", ["high_pdd"])]
    assert lake.sql("SELECT cost, rated FROM call_resources").fetchall() == [
        (Decimal("0.026000"), True)
    ]
    assert lake.sql("SELECT sid, level, error_code FROM debugger_events").fetchall() == [
        ("NO1", "error", "32001")
    ]
    alerts = lake.sql("SELECT rule, state, value FROM alerts ORDER BY changed_at").fetchall()
    assert alerts == [("asr_low", "firing", 0.42), ("asr_low", "resolved", 0.42)]


async def test_an_older_version_arriving_later_changes_nothing(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    sink = _sink(lake, bus)
    await sink.handle(records([call_fact("CA1", 3)]))
    await sink.flush()
    # In a later batch, and inside one batch after the newer one.
    await sink.handle(records([call_fact("CA1", 1, status="ringing", duration=None)], start=1))
    await sink.flush()
    await sink.handle(
        records([call_fact("CA1", 4, cost="0.0300"), call_fact("CA1", 2, cost=None)], start=2)
    )
    await sink.flush()

    assert lake.sql("SELECT version, cost FROM calls").fetchall() == [(4, Decimal("0.030000"))]


async def test_a_call_whose_creation_time_moves_by_hours_keeps_one_row(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    # Version 1 dates the call by its first callback; version 2 by the Call resource's
    # date_created, 8 hours earlier for a call that waited in the CPS queue. Both name the
    # same last event (the terminal callback and the resource's end_time agree).
    ended = T0 + timedelta(seconds=70)
    first = call_fact("CA1", 1, cost=None, last_event=ended)
    second = call_fact("CA1", 2, created=T0 - timedelta(hours=8), last_event=ended)
    sink = _sink(lake, bus)
    for offset, envelope in enumerate([first, second, first, second, first]):
        await sink.handle(records([envelope], start=offset))
        await sink.flush()
        stored = lake.sql("SELECT version, call_time FROM calls").fetchall()
        assert stored == [(2, (T0 - timedelta(hours=8)).replace(tzinfo=None))] or (
            offset == 0 and stored == [(1, T0.replace(tzinfo=None))]
        )


async def test_a_call_closed_by_timeout_then_ended_hours_later_keeps_one_row(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    # The processor closed a silent call by its timeout (version 1, last event at T0); its
    # terminal callback came 3 hours later (version 2). Either order, and replays, keep one row.
    timeout = call_fact("CA1", 1, status="unknown", duration=None, cost=None, last_event=T0)
    timeout = replace(timeout, fields={**timeout.fields, "closed_by_timeout": True})
    ended = call_fact(
        "CA1", 2, created=T0 - timedelta(minutes=1), last_event=T0 + timedelta(hours=3)
    )
    sink = _sink(lake, bus)
    for offset, envelope in enumerate([timeout, ended, timeout, ended]):
        await sink.handle(records([envelope], start=offset))
        await sink.flush()
        stored = lake.sql("SELECT version, status FROM calls").fetchall()
        assert stored == [(2, "completed")] or (offset == 0 and stored == [(1, "unknown")])


async def test_replaying_every_topic_from_offset_zero_leaves_the_tables_as_they_were(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    traffic = records(_mixed_traffic())
    sink = _sink(lake, bus)
    for record in traffic:  # one record per batch: every intermediate state is written
        await sink.handle([record])
        await sink.flush()
    before = _everything(lake)
    snapshot = lake.sql("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone()

    replay = _sink(lake, bus)
    await replay.handle(traffic)
    await replay.flush()
    for record in traffic:
        await replay.handle([record])
        await replay.flush()

    assert _everything(lake) == before
    changed = lake.sql(
        "SELECT count(*) FROM ducklake_snapshots('lake') WHERE snapshot_id > ? "
        "AND changes::VARCHAR LIKE '%inserted%'",
        params=[snapshot[0] if snapshot else 0],
    ).fetchone()
    assert changed == (0,)


async def test_a_poison_message_is_dead_lettered_and_the_batch_goes_on(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    good = records([call_fact("CA1", 1)])
    wrong_type = dict(orjson.loads(call_fact("CA2", 1).to_json()), version="two")
    huge = dict(orjson.loads(call_fact("CA3", 1).to_json()), call_duration_s=2**63)
    poison = [
        Record(topics.CALLS, 3, 17, b"AC", b"not json"),
        Record(topics.CALLS, 3, 18, b"AC", orjson.dumps(wrong_type)),
        Record(topics.CALLS, 3, 19, b"AC", orjson.dumps(huge)),
        Record(
            topics.ALERTS, 0, 5, b"AC", call_fact("CA4", 1).to_json().replace(b"call-fact", b"x")
        ),
    ]
    sink = _sink(lake, bus)
    await sink.handle(poison[:2] + good + poison[2:])
    await sink.flush()

    assert lake.sql("SELECT call_sid FROM calls").fetchall() == [("CA1",)]
    letters = [Envelope.from_json(r.value) for r in bus.records(topics.DEAD_LETTER)]
    assert [(e.fields["topic"], e.fields["partition"], e.fields["offset"]) for e in letters] == [
        (topics.CALLS, 3, 17),
        (topics.CALLS, 3, 18),
        (topics.ALERTS, 0, 5),
        (topics.CALLS, 3, 19),
    ]
    reasons = [str(e.fields["reason"]) for e in letters]
    assert "not JSON" in reasons[0]
    assert "version" in reasons[1]
    assert "no table for envelope type" in reasons[2]
    assert "does not fit calls" in reasons[3]


async def test_offsets_may_be_committed_only_once_the_batch_is_in_the_lake(
    lake: duckdb.DuckDBPyConnection, bus: InProcessBus
) -> None:
    """``handle`` says True (commit) only when everything handed to it is written."""
    sink = WarehouseSink(lake, bus, batch_size=3, flush_interval_s=3600)
    assert await sink.handle(records([call_fact("CA1", 1), call_fact("CA2", 1)])) is False
    assert lake.sql("SELECT count(*) FROM calls").fetchone() == (0,)
    assert await sink.handle(records([call_fact("CA3", 1)], start=2)) is True  # batch size
    assert lake.sql("SELECT count(*) FROM calls").fetchone() == (3,)
    poison = [Record(topics.CALLS, 0, 3, b"AC", b"{}")]
    assert await sink.handle(poison) is True  # dead-lettered: nothing left to write
