"""Every example query of docs/warehouse.md runs against a real warehouse, read-only."""

import re
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT, SettingsFactory
from tests.warehouse.envelopes import (
    ACCOUNT_A,
    ACCOUNT_B,
    call_fact,
    call_status,
    health,
    records,
    usage,
)
from voicepulse.bus import InProcessBus
from warehouse.lake import open_lake
from warehouse.setup import build_sink


def _example_queries() -> list[str]:
    page = (ROOT / "docs" / "warehouse.md").read_text(encoding="utf-8")
    section = page.split("\n## Example queries\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    return [q.strip() for block in blocks for q in block.split(";") if q.strip()]


QUERIES = _example_queries()


def test_the_docs_have_the_example_queries() -> None:
    text = "\n".join(QUERIES)
    assert len(QUERIES) >= 7
    for needle in ("asr", "billing_monthly", "queue_time_p95_ms", "usage_reconciliation"):
        assert needle in text


@pytest.fixture
async def reader(
    settings_factory: SettingsFactory, bus: InProcessBus, tmp_path: Path
) -> duckdb.DuckDBPyConnection:
    settings = settings_factory()
    sink, con = build_sink(settings, bus, {})
    try:
        traffic = [
            call_fact("CA1", 2),
            call_fact("CA2", 2, account=ACCOUNT_B, cost=None),
            call_status("CA2", 0, "initiated"),
            health(ACCOUNT_A, 0, 30, 20, {"231": 30}),
            health("ISV", 0, 30, 20, {"231": 30}),
            usage(ACCOUNT_A, "2026-10-05", "2", "0.0260"),
        ]
        await sink.handle(records(traffic))
        await sink.flush()
    finally:
        con.close()
    return open_lake(settings, read_only=True)


async def test_every_example_query_runs(reader: duckdb.DuckDBPyConnection) -> None:
    failed = {}
    try:
        for query in QUERIES:
            try:
                relation = reader.sql(query)
                assert relation is not None
                relation.fetchall()
            except duckdb.Error as exc:
                failed[query] = str(exc)
        # The data is from October 2026: the ISV row exists whatever "today" is; 30 calls
        # queued about 100 ms (histogram bucket 231).
        isv = reader.sql("SELECT queue_time_p95_ms FROM health_hourly WHERE account_sid = 'ISV'")
        assert isv.fetchall() == [(pytest.approx(100, rel=0.01),)]
    finally:
        reader.close()
    assert failed == {}
