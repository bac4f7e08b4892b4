"""A warehouse opens under any spelling of its directory, from anywhere, and after a move."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import call_fact, records
from voicepulse.bus import InProcessBus
from voicepulse.settings import Settings
from warehouse.lake import open_lake
from warehouse.setup import build_sink


async def _write_calls(settings: Settings, bus: InProcessBus, *sids: str) -> None:
    sink, con = build_sink(settings, bus, {})
    try:
        await sink.handle(records([call_fact(sid, 2, cost="0.0100") for sid in sids]))
        await sink.flush()
    finally:
        con.close()


def _calls(settings: Settings) -> list[str]:
    con = open_lake(settings, read_only=True)
    try:
        return [sid for (sid,) in con.sql("SELECT call_sid FROM calls ORDER BY 1").fetchall()]
    finally:
        con.close()


async def test_a_lake_made_from_a_relative_path_opens_by_its_absolute_path_and_back(
    settings_factory: SettingsFactory,
    bus: InProcessBus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = settings_factory(data_dir=Path("data"))
    await _write_calls(relative, bus, "CA1")
    absolute = settings_factory(data_dir=tmp_path / "data")
    assert _calls(absolute) == ["CA1"]
    await _write_calls(absolute, bus, "CA2")  # the writer too
    assert _calls(relative) == ["CA1", "CA2"]
    dotted = settings_factory(data_dir=Path("./data/../data"))
    assert _calls(dotted) == ["CA1", "CA2"]


async def test_a_lake_opens_from_another_directory_and_through_a_link(
    settings_factory: SettingsFactory, bus: InProcessBus, tmp_path: Path
) -> None:
    await _write_calls(settings_factory(data_dir=tmp_path / "data"), bus, "CA1")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "CA1" in _sql(elsewhere, "../link", "FROM calls")


def _env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    return env | more


def _sql(cwd: Path, data_dir: str, query: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "voicepulse.cli", "sql", "--format", "csv", query],
        cwd=cwd,
        env=_env(VOICEPULSE_DATA_DIR=data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _write_one_call_elsewhere(data_dir: Path, sid: str) -> None:
    """Written by another process, which has ended: a lake is moved while nothing has it open."""
    subprocess.run(
        [sys.executable, "-c", _WRITE_ONE_CALL, str(data_dir), sid],
        check=True,
        timeout=120,
        env=_env(),
    )


_WRITE_ONE_CALL = """
import asyncio, sys
from pathlib import Path
from tests.warehouse.envelopes import call_fact, records
from voicepulse.bus import InProcessBus
from voicepulse.settings import Settings
from warehouse.setup import build_sink

async def main() -> None:
    sink, con = build_sink(Settings(data_dir=Path(sys.argv[1])), InProcessBus(), {})
    await sink.handle(records([call_fact(sys.argv[2], 2, cost="0.0100")]))
    await sink.flush()
    con.close()

asyncio.run(main())
"""


async def test_a_moved_directory_with_its_sqlite_catalog_opens_and_takes_writes(
    settings_factory: SettingsFactory, bus: InProcessBus, tmp_path: Path
) -> None:
    _write_one_call_elsewhere(tmp_path / "data", "CA1")
    shutil.move(tmp_path / "data", tmp_path / "moved")
    moved = settings_factory(data_dir=tmp_path / "moved")
    assert _calls(moved) == ["CA1"]
    await _write_calls(moved, bus, "CA2")
    assert _calls(moved) == ["CA1", "CA2"]
    assert not (tmp_path / "data").exists()  # nothing written where the lake used to be


async def test_a_postgres_catalog_keeps_its_data_path_unless_told_otherwise(
    postgres_catalog: str, settings_factory: SettingsFactory, bus: InProcessBus, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    await _write_calls(settings_factory(catalog=postgres_catalog, data_dir=shared), bus, "CA1")

    # Another machine names its own data directory: the catalog's path is kept.
    other = settings_factory(catalog=postgres_catalog, data_dir=tmp_path / "other")
    assert _calls(other) == ["CA1"]
    await _write_calls(other, bus, "CA2")
    assert list((tmp_path / "other").rglob("*.parquet")) == []

    # Told otherwise: the files moved, and warehouse_data_path says where.
    shutil.move(shared / "lake", tmp_path / "files")
    told = settings_factory(
        catalog=postgres_catalog,
        data_dir=tmp_path / "other",
        warehouse_data_path=f"{tmp_path / 'files'}/",
    )
    assert _calls(told) == ["CA1", "CA2"]
