"""The lake's files on S3-compatible object storage: the sink, analysts' reads and upkeep there.

Runs against a real S3 server on loopback (SeaweedFS, started by scripts/test as
``S3_TEST_ENDPOINT``); without one the tests fail in CI and are skipped elsewhere.
"""

import logging
import os
import uuid
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import call_fact, records
from voicepulse.bus import InProcessBus
from voicepulse.settings import Settings
from warehouse.lake import open_lake
from warehouse.maintenance import maintain
from warehouse.setup import build_sink

_SECRET = "not-a-real-secret-4f1c"


@pytest.fixture
def s3_lake(settings_factory: SettingsFactory, tmp_path: Path) -> Settings:
    """Settings for a lake whose catalog is local and whose files are in a fresh bucket."""
    endpoint = os.environ.get("S3_TEST_ENDPOINT")
    if not endpoint:
        message = "no S3 server: run the tests with scripts/test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    httpx.put(f"http://{endpoint}/{bucket}", timeout=30).raise_for_status()
    return settings_factory(
        data_dir=tmp_path / "data",
        warehouse_data_path=f"s3://{bucket}/warehouse/",
        s3_endpoint=f"http://{endpoint}",
        s3_region="us-east-1",
        s3_access_key_id="voicepulse-test",
        s3_secret_access_key=_SECRET,
    )


def _parquet_files(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    found = con.sql(f"SELECT count(*) FROM glob('{settings.warehouse_data_path}**/*.parquet')")
    row = found.fetchone()
    assert row is not None
    return int(row[0])


async def test_the_sink_writes_analysts_read_and_upkeep_runs_on_object_storage(
    s3_lake: Settings, bus: InProcessBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink, con = build_sink(s3_lake, bus, {})
    try:
        for batch in range(4):  # a file per flush
            sids = [f"CA{batch}{n:03d}" for n in range(50)]
            await sink.handle(
                records([call_fact(sid, 2, duration=61, cost="0.0200") for sid in sids])
            )
            await sink.flush()
        files_before = _parquet_files(con, s3_lake)

        reader = open_lake(s3_lake, read_only=True)
        try:
            calls = reader.sql("SELECT count(*), sum(billed_minutes) FROM billed_calls").fetchone()
        finally:
            reader.close()
        assert calls == (200, 400)

        maintain(con, retention_s=0)
        files_after = _parquet_files(con, s3_lake)
        assert files_after < files_before  # merged, and the merged-away files deleted
        count = con.sql("SELECT count(*) FROM calls").fetchone()
        assert count == (200,)
    finally:
        con.close()
    assert not list((s3_lake.data_dir / "lake").rglob("*.parquet"))  # nothing written locally
    assert _SECRET not in caplog.text
    assert _SECRET not in str(s3_lake.masked())
