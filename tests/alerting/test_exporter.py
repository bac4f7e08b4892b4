"""`voicepulse alert`'s /metrics, and the Prometheus rules shipped beside it (promtool)."""

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import yaml
from prometheus_client import CollectorRegistry

from alerting.exporter import build_metrics
from ingest.server import HttpServerStage
from tests.alerting.test_notify import ACME, BETA, NAMES, change, publish
from tests.conftest import SettingsFactory
from tests.helpers import eventually, free_port
from tests.helpers import metric_value as _one
from tests.helpers import scrape_metrics as _scrape
from tests.warehouse.envelopes import health
from voicepulse import topics
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerting" / "prometheus" / "voicepulse-rules.yml"
RULES_TEST = Path(__file__).parent / "prometheus" / "rules_test.yml"
PROMTOOL = "/usr/bin/promtool"


def test_promtool_checks_and_tests_the_shipped_rules() -> None:
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool is not installed (scripts/test installs the prometheus package)")
    checked = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", RULES_TEST.name], capture_output=True,
                            text=True, timeout=120, check=False, cwd=RULES_TEST.parent)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _row(account: str, minute: int, *, closed: bool, **fields: Any) -> Envelope:
    base = health(account, minute, attempts=10, answered=6, hist={"-1": 2, "400": 3})
    values = {**base.fields, "closed": closed, "asr": 0.6, "acd_s": 60.0, "short_call_ratio": 0.0,
              "queue_time_p95_ms": 2800.0, "cps_utilisation": 1.0, "queue_time_sum_ms": 8400,
              "attestation": {"A": 1}, "debugger_errors": {"32001": 2}}  # fmt: skip
    values.update(fields)
    return msgspec.structs.replace(base, fields=values)


async def test_metrics_show_the_last_closed_window_count_each_once_and_the_firing_alerts(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(alert_metrics_port=0)
    bus = InProcessBus()
    stages = build_metrics(settings, bus, tenant_names=NAMES, registry=CollectorRegistry())
    server = stages[0]
    assert isinstance(server, HttpServerStage)
    pipeline = Pipeline(bus, stages)
    await pipeline.start()
    minute_1: dict[str, Any] = {"asr": 0.5, "answered": 5, "completed": 5, "busy": 5}
    try:
        rows = [
            _row(ACME, 0, closed=True, from_numbers={"+1A": 6, "+1B": 4}),
            _row(ACME, 1, closed=False, asr=0.1),  # open: neither shown nor counted
            _row(ACME, 1, closed=True, **minute_1, from_numbers={"+1A": 2, "+1C": 8}),
            _row(ACME, 1, closed=True, **minute_1, from_numbers={"+1B": 100}),  # a replay
            _row(ACME, 2, closed=True, queue_time_hist={"x": 1}),  # unreadable: changes nothing
            _row(
                BETA,
                0,
                closed=True,
                cps_per_second=[1] * 30 + [0] * 30,
                cps_limit=1.0,
                from_numbers={"+1X": 30},
            ),
            # 16 minutes on: Beta's first window has left the caller ID span.
            _row(BETA, 16, closed=True, cps_per_second=[0] * 60, from_numbers={"+1Y": 10}),
        ]
        for row in rows:
            await bus.publish(topics.HEALTH, row.key, row.to_json())
        await publish(
            bus,
            change(ACME, "asr_low", "firing", 2),
            change(BETA, "acd_low", "firing", 2),
            change(BETA, "acd_low", "resolved", 6, started=2),
        )
        samples = await eventually(
            lambda: _scrape(server.port),
            lambda s: (
                len(s.get("voicepulse_alerts_firing", {})) == 1
                and _one(s, "voicepulse_health_attempts_total", account_sid=ACME) == 20
                and _one(s, "voicepulse_health_caller_id_calls_15m", account_sid=BETA) == 10
            ),
            timeout_s=10,
        )
    finally:
        await pipeline.stop()
    acme = {"account_sid": ACME, "tenant": "Acme Dental", "direction_group": "outbound"}
    assert _one(samples, "voicepulse_health_asr_ratio", **acme) == 0.5
    assert _one(samples, "voicepulse_health_acd_seconds", **acme) == 60.0
    assert _one(samples, "voicepulse_health_queue_time_p95_seconds", **acme) == 2.8
    assert _one(samples, "voicepulse_health_cps_utilisation_ratio", **acme) == 1.0
    assert _one(samples, "voicepulse_health_answered_total", **acme) == 11
    # Caller ID over the 15 min up to the last closed window: +1A 8, +1B 4, +1C 8 of 20 calls.
    assert _one(samples, "voicepulse_health_caller_id_calls_15m", **acme) == 20
    assert _one(samples, "voicepulse_health_caller_id_top_share_15m_ratio", **acme) == 0.4
    assert _one(samples, "voicepulse_health_caller_id_top_share_15m_ratio", account_sid=BETA) == 1
    assert _one(samples, "voicepulse_health_talk_seconds_total", **acme) == 720
    assert _one(samples, "voicepulse_health_debugger_errors_total", **acme) == 4
    assert _one(samples, "voicepulse_health_attestation_total", attestation="A", **acme) == 2
    assert _one(samples, "voicepulse_health_cps_saturated_seconds_total", **acme) == 20
    assert _one(samples, "voicepulse_health_cps_saturated_seconds_total", account_sid=BETA) == 30
    # QueueTime: bucket -1 is 0 ms, bucket 400 about 2.9 s (within 1 %): 2 and 3 calls a window.
    bucket = "voicepulse_health_queue_time_seconds_bucket"
    assert _one(samples, bucket, le="0.1", **acme) == 4
    assert _one(samples, bucket, le="2.0", **acme) == 4
    assert _one(samples, bucket, le="3.0", **acme) == 10
    assert _one(samples, bucket, le="+Inf", **acme) == 10
    assert _one(samples, "voicepulse_health_queue_time_seconds_sum", **acme) == pytest.approx(16.8)
    firing = samples["voicepulse_alerts_firing"]
    assert list(firing) == [
        tuple(sorted({**acme, "rule": "asr_low", "severity": "warning"}.items()))
    ]


def test_the_rules_read_only_metrics_that_are_served() -> None:
    """Every metric name in the shipped rules is one the exporter writes."""
    served = set(
        re.findall(r"voicepulse_[a-z0-9_]+", (ROOT / "alerting" / "exporter.py").read_text())
    )
    served |= {f"voicepulse_health_{name}_total" for name in re.findall(
        r'\("([a-z_]+)", "[A-Z]', (ROOT / "alerting" / "exporter.py").read_text())}  # fmt: skip
    served |= {"voicepulse_health_queue_time_seconds_bucket",
               "voicepulse_health_queue_time_seconds_count"}  # fmt: skip
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    used = {name for rule in rules for name in re.findall(r"voicepulse_[a-z0-9_]+", rule["expr"])}
    assert used, "no metric found in the rules"
    assert used <= served, used - served
    assert {rule["alert"] for rule in rules} == {
        "asr_low", "acd_low", "short_calls_high", "caller_id_repetitive", "attestation_low",
        "queue_time_high",
        "cps_saturated", "trunk_cps_rejections", "debugger_errors_high", "toll_fraud_shape",
    }  # fmt: skip


async def test_voicepulse_alert_serves_metrics_on_the_port_it_is_given(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicepulse.cli", "alert", "--metrics-port", str(port),
        "--data-dir", str(tmp_path / "data"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        text = await eventually(lambda: _get(port), lambda body: body is not None, timeout_s=30)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = await process.communicate()
    assert text is not None
    assert "# TYPE voicepulse_alerts_firing gauge" in text
    assert "# TYPE voicepulse_health_attempts_total counter" in text
    assert process.returncode == 0, err.decode()


async def _get(port: int) -> str | None:
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
    except httpx.TransportError:
        return None
    return response.text if response.status_code == 200 else None
