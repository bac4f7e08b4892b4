"""The producers, the warehouse and the message declarations (voicepulse/messages.py) agree:
each producer builds only the fields its type declares, each table reads every declared field
but the ones it says it does not store, and health_minute's columns are a HealthWindow's fields
but its ratios."""

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import duckdb
from msgspec.structs import replace

from ingest.pollers.envelopes import usage_envelope
from processors.engine import EngineConfig
from processors.processor import Processor
from tests.processors.closing import run
from tests.processors.sources import T0, callback, debugger, resource, summary
from tests.warehouse.envelopes import alert
from voicepulse.envelope import Envelope
from voicepulse.messages import (
    HEALTH_RATIOS,
    AlertChange,
    CallFact,
    CallResource,
    CallStatusEvent,
    DebuggerEvent,
    HealthWindow,
    InsightsSummary,
    UsageRecord,
)
from warehouse.tables import BY_TYPE

DECLARED: dict[str, Any] = {
    "call-status": CallStatusEvent,
    "debugger-event": DebuggerEvent,
    "call-resource": CallResource,
    "insights-summary": InsightsSummary,
    "usage-record": UsageRecord,
    "call-fact": CallFact,
    "health-minute": HealthWindow,
    "alert": AlertChange,
}


def _keys(declared: Any) -> frozenset[str]:
    return frozenset(declared.__required_keys__ | declared.__optional_keys__)


class Reads(Mapping[str, Any]):
    """An envelope's fields that note which of them a reader looks up."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = fields
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        self.read.add(name)
        return self._fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        self.read.add(name)
        return self._fields.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def _produced() -> list[Envelope]:
    """One envelope of each type, from the code that builds it in the pipeline."""
    processor = Processor(EngineConfig())
    out = processor.apply_envelopes(
        [callback(0, "initiated", T0), callback(1, "completed", T0 + timedelta(seconds=50))]
    )
    usage = {
        "account_sid": "AC" + "3" * 32,
        "category": "calls-outbound",
        "start_date": "2026-11-25",
        "count": "12",
        "usage": "31",
        "price": "0.434",
        "price_unit": "usd",
    }
    return [
        callback(0, "initiated", T0),
        debugger(),
        resource("-0.0130"),
        summary("complete"),
        usage_envelope(usage, None),
        out.facts[0],
        run().first_closed[0],
        alert("asr_low", "firing", 3),
    ]


NOT_STORED: dict[str, frozenset[str]] = {
    "call-status": frozenset({"from", "to"}),  # kept in the raw parameters
    "health-minute": frozenset(HEALTH_RATIOS),  # the views compute them from the sums
}
"""The declared fields a table has no column for; the alerts table keeps every field whole in
its ``detail`` column besides the ones it reads."""


def test_producers_build_declared_fields_and_tables_read_them() -> None:
    produced = _produced()
    assert {envelope.type for envelope in produced} == set(BY_TYPE) == set(DECLARED)
    for envelope in produced:
        declared = _keys(DECLARED[envelope.type])
        assert set(envelope.fields) <= declared, envelope.type
        fields = Reads(envelope.fields)
        BY_TYPE[envelope.type].to_row(replace(envelope, fields=fields))
        assert fields.read <= declared, envelope.type
        if envelope.type != "alert":
            unread = declared - fields.read
            assert unread == NOT_STORED.get(envelope.type, frozenset()), envelope.type


def test_health_minute_stores_every_field_of_a_health_window_but_its_ratios(
    lake: duckdb.DuckDBPyConnection,
) -> None:
    columns = set(lake.sql("SELECT * FROM health_minute LIMIT 0").columns)
    stored = _keys(HealthWindow) - set(HEALTH_RATIOS)
    # The warehouse's own columns: the header, when the row was stored, and who computed it.
    assert columns == stored | {"account_sid", "parent_account_sid", "updated_at", "source"}
    row = run().first_closed[0]
    assert set(row.fields) == _keys(HealthWindow)
    fields = Reads(row.fields)
    assert set(BY_TYPE["health-minute"].to_row(replace(row, fields=fields))) == columns
    assert fields.read == stored
