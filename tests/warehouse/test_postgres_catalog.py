"""A DuckLake catalog on a real PostgreSQL server: several writers and readers on one lake."""

import threading
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import ACCOUNT_A, ACCOUNT_B, call_fact, records
from voicepulse.bus import InProcessBus
from voicepulse.errors import WarehouseError
from warehouse.lake import open_lake
from warehouse.schema import migrate
from warehouse.setup import build_sink
from warehouse.sink import lake_schemas, write_batches
from warehouse.tables import BY_TYPE

CALLS = BY_TYPE["call-fact"]


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


def test_concurrent_writers_on_a_postgres_catalog_lose_no_batch(
    postgres_catalog: str, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    """Three writer connections commit at once; conflicting commits are retried, none lost."""
    settings = settings_factory(catalog=postgres_catalog, data_dir=tmp_path / "shared")
    setup = open_lake(settings)
    try:
        migrate(setup)
        schema = lake_schemas(setup)[CALLS]
    finally:
        setup.close()
    errors: list[str] = []

    def writer(number: int) -> None:
        con = open_lake(settings)
        try:
            for batch in range(10):
                rows = [CALLS.to_row(call_fact(f"CA{number}x{batch}x{i}", 1)) for i in range(40)]
                write_batches(con, {CALLS: pa.Table.from_pylist(rows, schema)})
        except WarehouseError as exc:
            errors.append(str(exc))
        finally:
            con.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    reader = open_lake(settings, read_only=True)
    try:
        count = reader.sql("SELECT count(*), count(DISTINCT call_sid) FROM calls").fetchone()
    finally:
        reader.close()
    assert errors == []
    assert count == (1200, 1200)
