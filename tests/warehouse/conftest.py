"""Fixtures for the warehouse tests: a real DuckLake on a SQLite catalog in a temp directory."""

import os
import subprocess
import uuid
from collections.abc import Iterator

import duckdb
import pytest

from tests.conftest import SettingsFactory
from voicepulse.bus import InProcessBus
from voicepulse.settings import Settings
from warehouse.lake import open_lake
from warehouse.schema import migrate


@pytest.fixture
def lake_settings(settings_factory: SettingsFactory) -> Settings:
    return settings_factory()


@pytest.fixture
def lake(lake_settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A migrated, empty warehouse: the writer's connection."""
    con = open_lake(lake_settings)
    migrate(con)
    try:
        yield con
    finally:
        con.close()


@pytest.fixture
async def bus() -> InProcessBus:
    memory = InProcessBus()
    await memory.start()
    return memory


@pytest.fixture
def postgres_catalog() -> str:
    """A fresh database on the test PostgreSQL server (scripts/test starts one), as a URL.

    ``POSTGRES_TEST_URL`` names the server; without it the test fails in CI and is
    skipped elsewhere with the reason.
    """
    server = os.environ.get("POSTGRES_TEST_URL")
    if not server:
        message = "no PostgreSQL server: run the tests with scripts/test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    database = f"lake_{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["psql", server, "-q", "-c", f"CREATE DATABASE {database}"],
        check=True,
        timeout=60,
        capture_output=True,
    )
    return f"{server.rsplit('/', 1)[0]}/{database}"
