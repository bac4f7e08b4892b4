"""The pull stage as operators run it: inside the pipeline with its /metrics, and the commands
(`voicepulse pull --once`, `voicepulse run` with Twilio credentials) as subprocesses."""

import asyncio
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from simulator.fake_twilio import FakeState, generate_state, serve_fake_twilio
from tests.helpers import eventually, free_port, read_topic
from tests.pullers.conftest import PullSettings
from voicepulse import topics
from voicepulse.pipeline import Role, build_pipeline

VOICEPULSE = [sys.executable, "-m", "voicepulse.cli"]


@pytest.mark.kafka
async def test_insights_refused_is_a_status_logged_once_not_a_crash_loop(
    pull_settings: PullSettings,
    kafka_bootstrap: str,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = generate_state(subaccounts=3, calls=90, days=1, seed=17)
    state.clock.freeze()
    refused = next(iter(state.subaccounts))
    state.set_insights(refused, enabled=False)
    caplog.set_level(logging.INFO, logger="ingest.pollers")
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(
            state,
            base,
            pull_metrics_port=0,
            pull_interval_s=0.2,
            pull_insights_retry_s=0.2,
            pull_rediscover_interval_s=0.2,
        )
        pipeline = build_pipeline(settings, {Role.PULL}, namespace=namespace)
        await pipeline.start()
        try:
            tries = f"summaries:{refused}"

            async def asked() -> int:
                return state.requests[tries]

            await eventually(asked, lambda n: n >= 3, timeout_s=30)
            other = generate_state(subaccounts=1, calls=10, days=1, seed=99)
            newcomer = replace(next(iter(other.subaccounts.values())), owner_sid=state.parent.sid)
            state.add_subaccount(newcomer)
            state.add_calls(other.calls_by_sid.values())

            async def pulled() -> int:
                return state.requests[f"calls:{newcomer.sid}"]

            await eventually(pulled, lambda n: n >= 1, timeout_s=30)  # listed again, found
            port = next(s for s in pipeline.stages if s.name == "pull-metrics").port  # type: ignore[attr-defined]
            async with httpx.AsyncClient() as client:
                scraped = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            task = pipeline.stages[0].task
            assert task is not None
            assert not task.done()
        finally:
            await pipeline.stop()
    status = (
        f'voicepulse_pull_status{{account_sid="{refused}",resource="insights",'
        f'status="insights_unavailable"}} 1.0'
    )
    assert status in scraped
    calls_ok = f'voicepulse_pull_status{{account_sid="{refused}",resource="calls",status="ok"}} 1.0'
    assert calls_ok in scraped
    said = [r for r in caplog.records if "Voice Insights unavailable" in r.getMessage()]
    assert len(said) == 1
    calls = await read_topic(kafka_bootstrap, namespace, topics.TWILIO_CALLS)
    assert {e.fields["call_sid"] for e in calls} == set(state.calls_by_sid)  # newcomer's too


def _env(state: FakeState, base: str, data_dir: Path, **values: str) -> dict[str, str]:
    """The environment of a ``voicepulse`` process pulling from the fake Twilio at ``base``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    env.update(
        VOICEPULSE_TWILIO_ACCOUNT_SID=state.parent.sid,
        VOICEPULSE_TWILIO_AUTH_TOKEN=state.parent.auth_token,
        VOICEPULSE_TWILIO_API_BASE_URL=base,
        VOICEPULSE_TWILIO_INSIGHTS_BASE_URL=base,
        VOICEPULSE_PULL_DISCOVER_SUBACCOUNTS="true",
        VOICEPULSE_DATA_DIR=str(data_dir),
        # `run` serves the alert metrics and the dashboard: on free ports, not 9109 and 8080
        VOICEPULSE_ALERT_METRICS_PORT="0",
        VOICEPULSE_DASHBOARD_PORT="0",
    )
    env.update(values)
    return env


@pytest.mark.kafka
async def test_pull_once_command_exits_by_the_outcome(
    tmp_path: Path, kafka_bootstrap: str, namespace: str
) -> None:
    state = generate_state(subaccounts=2, calls=40, days=1, seed=18)
    async with serve_fake_twilio(state) as base:
        env = _env(
            state,
            base,
            tmp_path,
            VOICEPULSE_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            VOICEPULSE_KAFKA_NAMESPACE=namespace,
            VOICEPULSE_PULL_MAX_ATTEMPTS="2",
            VOICEPULSE_PULL_BACKOFF_BASE_S="0.01",
        )
        ok = await _run([*VOICEPULSE, "pull", "--once"], env)
        assert ok.returncode == 0, ok.stderr
        assert state.requests["calls"] >= 2
        assert "backfill" in ok.stderr
        assert state.parent.auth_token not in ok.stderr
        state.faults.failing_accounts[next(iter(state.subaccounts))] = 503
        failed = await _run([*VOICEPULSE, "pull", "--once"], env)
    assert failed.returncode == 1
    assert "failing" in failed.stderr


async def test_run_pulls_when_twilio_credentials_are_set(tmp_path: Path) -> None:
    state = generate_state(subaccounts=2, calls=40, days=1, seed=19)
    metrics_port = free_port()
    async with serve_fake_twilio(state) as base:
        env = _env(
            state,
            base,
            tmp_path,
            VOICEPULSE_PULL_METRICS_PORT=str(metrics_port),
            VOICEPULSE_DASHBOARD_PORT="0",
        )
        run = await asyncio.create_subprocess_exec(
            *VOICEPULSE, "run", "--port", "0", "--no-demo", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient() as client:

                async def published() -> str:
                    try:
                        response = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
                    except httpx.TransportError:
                        return ""
                    return response.text

                scraped = await eventually(
                    published,
                    lambda text: 'voicepulse_pull_published_total{resource="usage"}' in text,
                    timeout_s=60,
                    interval_s=0.5,
                )
        finally:
            run.terminate()
            _, stderr = await asyncio.wait_for(run.communicate(), timeout=30)
    assert state.requests["calls"] >= 2
    assert 'voicepulse_pull_published_total{resource="calls"} 40.0' in scraped
    assert b"Traceback" not in stderr


class _Done:
    def __init__(self, returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr


async def _run(command: list[str], env: dict[str, str]) -> _Done:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return _Done(process.returncode, stderr.decode())
