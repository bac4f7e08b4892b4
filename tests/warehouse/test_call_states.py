"""A call's row is a function of the set of its facts, whatever order they arrive in.

Facts of up to three processor states of one call (a call forgotten past the dedupe horizon
and heard of again opens a later state, whose versions count from 1 again) are shuffled across
states, split into batches, duplicated and replayed: the stored row is always the fold of the
highest version of each state, in state order.
"""

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from tests.warehouse.envelopes import call_fact, records
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.settings import Settings
from warehouse.lake import open_lake
from warehouse.merge import fold_states
from warehouse.schema import migrate
from warehouse.sink import WarehouseSink
from warehouse.tables import BY_TYPE

CALLS = BY_TYPE["call-fact"]
_T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
_COLUMNS = (
    "status",
    "terminal",
    "answered",
    "closed_by_timeout",
    "call_duration_s",
    "billed_minutes",
    "cost",
    "call_type",
    "insights_state",
    "opened_at",
    "merged",
)
_sids = itertools.count()


@st.composite
def _fact_fields(draw: st.DrawFn) -> dict[str, Any]:
    ended = draw(st.booleans())
    fields: dict[str, Any] = {
        "cost": draw(st.sampled_from([None, "0.0100", "0.0200"])),
        "insights_state": draw(st.sampled_from([None, "partial", "complete"])),
        "call_type": draw(st.sampled_from([None, "carrier", "sip"])),
    }
    if not ended:  # closed by the processor's timeout: it never saw the terminal callback
        fields |= {"status": "unknown", "terminal": False, "answered": False}
        fields |= {"closed_by_timeout": True, "call_duration_s": None, "billed_minutes": None}
    return fields


@st.composite
def _call(draw: st.DrawFn) -> list[Envelope]:
    """Every fact of one call: 1-3 states of 1-3 versions each."""
    sid = f"CAstates{next(_sids):06d}"
    facts = []
    for state in range(draw(st.integers(1, 3))):
        opened = _T0 + timedelta(hours=3 * state)
        for version in range(1, draw(st.integers(1, 3)) + 1):
            fact = call_fact(sid, version, created=_T0, last_event=_T0 + timedelta(seconds=70))
            fields = {**fact.fields, "opened_at": opened.isoformat(), **draw(_fact_fields())}
            facts.append(replace(fact, id=f"{sid}:{state}:{version}", fields=fields))
    return facts


def _expected(facts: list[Envelope]) -> tuple[Any, ...]:
    """The fold of the highest version of each state: the reference, from the facts alone."""
    latest: dict[Any, dict[str, Any]] = {}
    for row in (CALLS.to_row(f) for f in facts):
        held = latest.get(row["opened_at"])
        if held is None or row["version"] > held["version"]:
            latest[row["opened_at"]] = row
    row = fold_states([latest[k] for k in sorted(latest)])
    return tuple(row[c] for c in _COLUMNS)


@pytest.fixture(scope="module")
def shared_lake(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("states")) / "data")
    con = open_lake(settings)
    migrate(con)
    return con


async def _deliver(con: duckdb.DuckDBPyConnection, batches: list[list[Envelope]]) -> None:
    bus = InProcessBus()
    await bus.start()
    sink = WarehouseSink(con, bus, batch_size=10_000, flush_interval_s=3600)
    offset = 0
    for batch in batches:
        await sink.handle(records(batch, start=offset))
        await sink.flush()
        offset += len(batch)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(call=_call(), data=st.data())
def test_the_row_is_the_fold_of_each_states_latest_fact_in_any_order(
    shared_lake: duckdb.DuckDBPyConnection, call: list[Envelope], data: st.DataObject
) -> None:
    delivered = data.draw(st.permutations(call))
    delivered += data.draw(st.lists(st.sampled_from(call), max_size=4))  # duplicates
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(delivered) - 1)), max_size=3)))
    batches = [delivered[a:b] for a, b in itertools.pairwise([0, *cuts, len(delivered)])]
    replay_from = data.draw(st.integers(0, len(delivered)))
    batches.append(delivered[replay_from:])  # a consumer restarted from an older offset
    asyncio.run(_deliver(shared_lake, [b for b in batches if b]))

    sid = call[0].fields["call_sid"]
    rows = shared_lake.sql(
        f"SELECT {', '.join(_COLUMNS)} FROM calls WHERE call_sid = ?", params=[sid]
    ).fetchall()
    assert rows == [_expected(call)]
    states = shared_lake.sql(
        "SELECT count(*) FROM call_states WHERE call_sid = ?", params=[sid]
    ).fetchone()
    several = len({f.fields["opened_at"] for f in call}) > 1
    assert states == ((len({f.fields["opened_at"] for f in call}) if several else 0),)
