"""Fixtures for the warehouse tests: a real DuckLake on a SQLite catalog in a temp directory."""

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
