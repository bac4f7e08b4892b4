"""A DuckLake catalog on a real PostgreSQL server: several writers and readers on one lake."""

from decimal import Decimal
from pathlib import Path

from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import ACCOUNT_A, ACCOUNT_B, call_fact, records
from voicepulse.bus import InProcessBus
from warehouse.lake import open_lake
from warehouse.setup import build_sink


async def test_two_writers_and_a_reader_share_a_postgres_catalog(
    postgres_catalog: str, settings_factory: SettingsFactory, tmp_path: Path, bus: InProcessBus
) -> None:
    shared = tmp_path / "shared-data"
    settings = settings_factory(catalog=postgres_catalog, data_dir=shared)
    first, first_con = build_sink(settings, bus, {})
    second, second_con = build_sink(settings, bus, {})  # migrations already applied: no-op
    reader = open_lake(settings, read_only=True)
    try:
        await first.handle(records([call_fact("CA1", 2, cost="0.0100")]))
        await first.flush()
        assert reader.sql("SELECT call_sid FROM calls").fetchall() == [("CA1",)]

        await second.handle(records([call_fact("CA2", 2, account=ACCOUNT_B, cost="0.0200")]))
        await second.flush()
        await first.handle(records([call_fact("CA1", 1, cost=None)], start=1))  # older: ignored
        await first.flush()

        rows = reader.sql(
            "SELECT account_sid, sum(cost) FROM billing_monthly WHERE scope = 'subaccount' "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
        versions = reader.sql("SELECT max(version) FROM schema_version").fetchone()
    finally:
        reader.close()
        first_con.close()
        second_con.close()
    assert rows == [(ACCOUNT_A, Decimal("0.010000")), (ACCOUNT_B, Decimal("0.020000"))]
    assert versions is not None
    assert versions[0] >= 4
    assert not (shared / "catalog.sqlite").exists()
