"""Nothing pulled is lost: the pull state records an item as published only once it is on the
bus the processors and the sink read, so `pull` and then `run` store every call, summary and
usage record of the fake Twilio (docs/operations.md, "A fake Twilio")."""

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ingest.pollers import pull_once
from simulator.fake_twilio import FakeState, generate_state, serve_fake_twilio
from simulator.fake_twilio.command import tenants_toml
from tests.conftest import SettingsFactory
from tests.helpers import eventually, free_port
from tests.pullers.conftest import PullSettings
from tests.pullers.test_pull_stage import _env, _run
from voicepulse.errors import WarehouseError
from voicepulse.pipeline import Role, build_pipeline
from voicepulse.settings import Settings
from warehouse.lake import open_lake

VOICEPULSE = [sys.executable, "-m", "voicepulse.cli"]
_COUNTS = (
    "SELECT (SELECT count(DISTINCT call_sid) FROM call_resources), "
    "(SELECT count(DISTINCT call_sid) FROM insights_summaries), "
    "(SELECT count(*) FROM usage_records)"
)


def _expected(state: FakeState, settings: Settings) -> tuple[int, int, int]:
    """Calls, Insights summaries and usage records the fake serves now, in the backfill."""
    now = state.clock.now()
    summaries = sum(1 for c in state.calls_by_sid.values() if c.phase(now).summary is not None)
    days = settings.pull_backfill_days + 1
    usage = len(state.subaccounts) * len(settings.pull_usage_categories) * days
    return len(state.calls_by_sid), summaries, usage


def _counts(settings: Settings) -> tuple[Any, ...]:
    try:
        con = open_lake(settings, read_only=True)
    except WarehouseError:
        return ()  # not created yet
    try:
        row = con.sql(_COUNTS).fetchone()
    except duckdb.Error:
        return ()  # the schema is being created
    finally:
        con.close()
    return row or ()


def _fake(tmp_path: Path, seed: int) -> tuple[FakeState, Path]:
    state = generate_state(subaccounts=2, calls=60, days=1, seed=seed)
    state.clock.freeze()
    tenants = tmp_path / "fake.toml"
    tenants.write_text(tenants_toml(state), encoding="utf-8")
    return state, tenants


async def test_pull_as_the_docs_show_it_then_run_loses_nothing(
    tmp_path: Path, settings_factory: SettingsFactory
) -> None:
    """Without Kafka `voicepulse pull --once` refuses and says to use `voicepulse run`, and
    records nothing; `voicepulse run` with the same exports then stores everything."""
    state, tenants = _fake(tmp_path, seed=31)
    data = tmp_path / "data"
    settings = settings_factory(data_dir=data, tenants_file=tenants)
    async with serve_fake_twilio(state) as base:
        env = _env(
            state,
            base,
            data,
            VOICEPULSE_TENANTS_FILE=str(tenants),
            VOICEPULSE_PULL_DISCOVER_SUBACCOUNTS="false",
            VOICEPULSE_PULL_METRICS_PORT=str(free_port()),
        )
        refused = await _run([*VOICEPULSE, "pull", "--once"], env)
        assert refused.returncode == 2, refused.stderr
        assert "voicepulse run" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not (data / "pull.sqlite").exists()
        assert state.requests["calls"] == 0

        run = await asyncio.create_subprocess_exec(
            *VOICEPULSE, "run", "--port", "0", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            expected = _expected(state, settings)

            async def stored() -> tuple[Any, ...]:
                return await asyncio.to_thread(_counts, settings)

            got = await eventually(stored, lambda r: r == expected, timeout_s=60, interval_s=0.5)
        finally:
            run.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(run.communicate(), timeout=60)
    assert got == expected
    assert run.returncode == 0, stderr.decode()[-2000:]


@pytest.mark.kafka
async def test_pull_on_kafka_then_the_sink_stores_everything(
    tmp_path: Path, pull_settings: PullSettings, namespace: str
) -> None:
    """`pull --once` on Kafka, then the processor and the sink started afterwards: every item
    the pull recorded as published reaches the warehouse."""
    state, tenants = _fake(tmp_path, seed=32)
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(state, base, tenants_file=tenants, pull_discover_subaccounts=False)
        puller = await pull_once(settings, None, namespace=namespace)
    assert puller.failing() == []
    expected = _expected(state, settings)
    pipeline = build_pipeline(settings, {Role.PROCESS, Role.SINK}, namespace=namespace)
    await pipeline.start()
    try:

        async def stored() -> tuple[Any, ...]:
            return await asyncio.to_thread(_counts, settings)

        got = await eventually(stored, lambda r: r == expected, timeout_s=60, interval_s=0.5)
    finally:
        await pipeline.stop()
    assert got == expected
