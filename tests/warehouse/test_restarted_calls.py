"""A call the processor forgot past its dedupe horizon, heard of again: Twilio's Call resource
with the price and the complete Insights summary come after the horizon. Through the processor
and the sink into a real DuckLake: the ``calls`` row keeps its terminal status and gains the
price and the Insights fields, whatever batches and replays deliver the facts; the health
windows count the call once."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
from msgspec.structs import replace

from processors.engine import EngineConfig
from processors.processor import Processor
from tests.conftest import SettingsFactory
from tests.processors.sources import CALL, T0, callback, resource, summary
from tests.warehouse.envelopes import ACCOUNT_A, call_fact, records
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.types import Record
from warehouse.lake import open_lake
from warehouse.schema import migrate
from warehouse.sink import WarehouseSink

CONFIG = EngineConfig(grace_s=120, call_timeout_s=600, horizon_s=900)

_ROW = (
    "status, terminal, answered, closed_by_timeout, call_duration_s, cost, price_unit, "
    "insights_state, pdd_ms, call_type, disconnected_by, tags, queue_time_ms, merged"
)


def _callback(call: str, seq: int, status: str, at: datetime, **extra: str) -> Envelope:
    return callback(seq, status, at, call=call, direction="outbound-api", **extra)


def _resource(price: str) -> Envelope:
    return resource(price, direction="outbound-api", queue_time="1500")


def _summary(state: str) -> Envelope:
    return summary(state, direction="outbound_api", call_type="carrier")


def _other_call(n: int, at: datetime) -> list[Envelope]:
    """A short call of the same subaccount: its callbacks move the stream time on."""
    sid = f"CA{n:032x}"
    return [
        _callback(sid, 0, "initiated", at),
        _callback(sid, 1, "completed", at + timedelta(seconds=3), CallDuration="0"),
    ]


def _turns(late: bool) -> list[list[Envelope]]:
    """The call ends; the stream moves past the horizon (the call is forgotten); then, when
    ``late``, the priced resource and the complete summary; then past the call timeout."""
    call = [
        _callback(CALL, 0, "initiated", T0),
        _callback(CALL, 1, "ringing", T0 + timedelta(seconds=1)),
        _callback(CALL, 2, "in-progress", T0 + timedelta(seconds=8)),
        _callback(CALL, 3, "completed", T0 + timedelta(seconds=50), CallDuration="42"),
        _resource(""),  # the poller's first view: not rated yet
        _summary("partial"),
    ]
    turns = [*([e] for e in call), _other_call(1, T0 + timedelta(seconds=1200))]
    if late:
        turns.append([_resource("-0.0130"), _summary("complete")])
    turns.append(_other_call(2, T0 + timedelta(seconds=2400)))
    turns.append(_other_call(3, T0 + timedelta(seconds=3600)))
    return turns


def _run(late: bool) -> tuple[list[Envelope], dict[tuple[str, str], dict[str, Any]], int]:
    """Every fact emitted in order, the last row of each window, the shard's forgotten calls."""
    processor = Processor(CONFIG)
    facts: list[Envelope] = []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    evicted = 0
    for turn in _turns(late):
        out = processor.apply_envelopes(turn)
        shard = processor.shard(0)
        evicted += CALL in shard.evicted_calls
        shard.evicted_calls.clear()
        facts.extend(out.facts)
        rows.update(
            ((r.fields["direction_group"], str(r.fields["window_start"])), dict(r.fields))
            for r in out.rows
        )
    return facts, rows, evicted


async def _sink(lake: duckdb.DuckDBPyConnection, batches: list[list[Record]]) -> tuple[Any, ...]:
    bus = InProcessBus()
    await bus.start()
    sink = WarehouseSink(lake, bus, batch_size=10_000, flush_interval_s=3600)
    for batch in batches:
        await sink.handle(batch)
        await sink.flush()
    rows = lake.sql(f"SELECT {_ROW} FROM calls WHERE call_sid = ?", params=[CALL]).fetchall()
    return tuple(rows[0]) if rows else ()


def _of_call(facts: list[Envelope]) -> list[Envelope]:
    return [f for f in facts if f.fields["call_sid"] == CALL]


def test_a_forgotten_call_heard_of_again_starts_a_later_state() -> None:
    facts, _, evicted = _run(late=True)
    mine = _of_call(facts)
    assert evicted == 2  # forgotten past the horizon, then its restarted state too
    states = [(f.fields["opened_at"], f.fields["version"], f.fields["status"]) for f in mine]
    first, restarted = states[0][0], states[-1][0]
    assert first < restarted
    # Finished at once by its rated Call resource (not closed by the call timeout as unknown);
    # the complete summary in the same batch makes it version 2, one fact for both.
    assert [s[1:] for s in states if s[0] == restarted] == [(2, "completed")]
    assert all(state[0] in (first, restarted) for state in states)
    assert mine[-1].fields["cost"] == "0.0130"
    assert mine[-1].fields["insights_state"] == "complete"


def test_health_windows_count_the_restarted_call_once() -> None:
    _, without, _ = _run(late=False)
    _, with_late, _ = _run(late=True)
    counts = ("attempts", "answered", "completed", "unknown", "calls_created", "talk_seconds")

    def compared(rows: dict[tuple[str, str], dict[str, Any]]) -> dict[Any, Any]:
        return {key: tuple(row[c] for c in counts) for key, row in rows.items()}

    assert compared(with_late) == compared(without)
    assert sum(r["attempts"] for r in with_late.values()) == 4  # the call and three others
    # The call's window row is forgotten too by then (the horizon after its grace): the late
    # price and summary count nowhere, and no row is rebuilt from nothing to replace it.
    assert not any(r["late_events"] for r in with_late.values())


async def test_late_price_and_insights_reach_the_calls_row(lake: duckdb.DuckDBPyConnection) -> None:
    facts, _, _ = _run(late=True)
    row = await _sink(lake, [records(facts)])
    assert row == EXPECTED


EXPECTED = (
    "completed",
    True,
    True,
    False,
    42,
    Decimal("0.013000"),
    "USD",
    "complete",
    1800,
    "carrier",
    "callee",
    ["high_pdd"],
    1500,
    True,
)
"""The call's row: the terminal status of its first state, the price and Insights fields of
the restarted one."""


async def test_a_call_heard_of_once_keeps_its_row_unmerged(
    lake: duckdb.DuckDBPyConnection,
) -> None:
    facts, _, _ = _run(late=False)
    row = await _sink(lake, [records(facts)])
    assert row[:6] == ("completed", True, True, False, 42, None)
    assert row[-1] is False


async def test_every_delivery_and_replay_gives_the_same_row(
    settings_factory: SettingsFactory,
) -> None:
    """In-order delivery in any batches, then replays from any offset, as a Kafka consumer
    restarted from an older committed offset reads them: always the same row."""
    facts, _, _ = _run(late=True)
    ordered = records(_of_call(facts))
    n = len(ordered)
    assert n >= 4
    deliveries: list[list[list[Record]]] = [
        [ordered],
        [[r] for r in ordered],
        [ordered[:2], ordered[2:]],
        [ordered[: n - 1], ordered[n - 1 :]],
    ]
    for k in range(n):
        deliveries.append([ordered, ordered[k:]])  # a replay from offset k after everything
        deliveries.append([ordered[: k + 1], ordered[k:]])  # a crash after offset k
    deliveries.append([[r, r] for r in ordered])  # every fact twice in its batch
    seen = []
    for batches in deliveries:
        con = open_lake(settings_factory())
        migrate(con)
        try:
            seen.append(await _sink(con, batches))
        finally:
            con.close()
    assert all(row == EXPECTED for row in seen), seen


def _state_fact(version: int, opened: datetime, **fields: Any) -> Envelope:
    """A fact of the call "CA1" from the processor state opened at ``opened``."""
    fact = call_fact("CA1", version, created=T0, last_event=T0 + timedelta(seconds=70))
    return replace(fact, fields={**fact.fields, "opened_at": opened.isoformat(), **fields})


_UNKNOWN = {"status": "unknown", "terminal": False, "answered": False, "closed_by_timeout": True}
_FIRST = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
_LATER = _FIRST + timedelta(hours=3)


async def _rows_after(
    settings_factory: SettingsFactory, facts: list[Envelope], columns: str
) -> list[tuple[Any, ...]]:
    """The stored row after the facts in order, one batch each, and after each of: all in one
    batch, and a replay of all of them after that: every way must give the same row."""
    seen = []
    for batches in ([[f] for f in facts], [facts, facts]):
        con = open_lake(settings_factory())
        migrate(con)
        try:
            await _sink(con, [records(b) for b in batches])
            seen.append(tuple(con.sql(f"SELECT {columns} FROM calls").fetchall()))
        finally:
            con.close()
    assert seen[0] == seen[1]
    return list(seen[0])


async def test_a_later_state_that_ends_the_call_replaces_an_unknown_status(
    settings_factory: SettingsFactory,
) -> None:
    # The first state was closed by the timeout; the terminal callback came past the horizon.
    facts = [
        _state_fact(1, _FIRST, cost=None, price_unit=None, **_UNKNOWN),
        _state_fact(1, _LATER, cost=None, price_unit=None, queue_time_ms=None),
    ]
    rows = await _rows_after(settings_factory, facts, "status, terminal, queue_time_ms, merged")
    assert rows == [("completed", True, 120, True)]


async def test_a_later_partial_summary_keeps_the_complete_one(
    settings_factory: SettingsFactory,
) -> None:
    facts = [
        _state_fact(1, _FIRST, insights_state="complete", pdd_ms=900, call_type="carrier"),
        _state_fact(1, _LATER, insights_state="partial", pdd_ms=2000, call_type=None, **_UNKNOWN),
    ]
    rows = await _rows_after(
        settings_factory, facts, "status, insights_state, pdd_ms, call_type, version"
    )
    assert rows == [("completed", "complete", 900, "carrier", 1)]


async def test_a_row_stored_before_the_upgrade_takes_a_later_state_merged(
    settings_factory: SettingsFactory,
) -> None:
    """A row written before facts carried ``opened_at`` counts as the call's first state."""
    con = open_lake(settings_factory())
    try:
        migrate(con, target=9)
        con.execute(
            "INSERT INTO calls (call_sid, version, account_sid, call_time, status, terminal, "
            "answered, last_event_at, received_at) "
            "VALUES ('CA1', 4, ?, ?, 'completed', true, true, ?, ?)",
            [ACCOUNT_A, *[(T0 + timedelta(seconds=s)).replace(tzinfo=None) for s in (0, 70, 80)]],
        )
        migrate(con)
        late = _state_fact(1, _LATER, cost="0.0140", **_UNKNOWN)
        # No opened_at (from an older processor): an earlier state, so it changes nothing.
        old_style = call_fact(
            "CA1", 5, cost="9.9", created=T0, last_event=T0 + timedelta(seconds=70)
        )
        await _sink(con, [records([late]), records([old_style], start=1)])
        stored = con.sql("SELECT status, version, cost, merged FROM calls").fetchall()
    finally:
        con.close()
    assert stored == [("completed", 1, Decimal("0.014000"), True)]
