"""On real Kafka: the alert stage publishes the history an in-memory evaluator gives, and
SIGKILLed at random instants and restarted it publishes that same history, each change once."""

import asyncio
import contextlib
import os
import random
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerting import Evaluator, default_rules
from alerting.kafka import KafkaAlertStage
from tests.alerting.traffic_rows import health_rows, profile, tenant
from tests.bus.kafka import PARTITIONS as BUS_PARTITIONS
from tests.bus.kafka import visible
from tests.helpers import eventually, free_port
from voicepulse import topics
from voicepulse.bus import KafkaBus
from voicepulse.envelope import Envelope

pytestmark = [pytest.mark.kafka]

PARTITIONS = BUS_PARTITIONS


def _rows() -> list[Envelope]:
    """Three tenants (low ASR, trunk 503s, healthy) for 25 minutes, every row published,
    a tenth of them twice."""
    sims = [
        tenant(1, profile("low-asr", inbound_share=0.0)),
        tenant(2, profile("trunk-503", inbound_share=0.0)),
        tenant(3, profile("healthy", inbound_share=0.0)),
    ]
    rows = health_rows(sims, 1500, cps_limit=5.0, isv_cps_limit=2.0)
    rng = random.Random(5)
    return [r for row in rows for r in ([row, row] if rng.random() < 0.1 else [row])]


def _expected(rows: Sequence[Envelope]) -> list[tuple[str, dict[str, Any]]]:
    evaluator = Evaluator(default_rules())
    return sorted(
        (change.id, _fields(change.to_json()))
        for row in rows
        for change in evaluator.add(row.account_sid, row.fields)
    )


def _fields(value: bytes) -> dict[str, Any]:
    doc = orjson.loads(value)
    doc.pop("received_at")
    return dict(doc)


async def _published(bootstrap: str, namespace: str) -> list[tuple[str, dict[str, Any]]]:
    seen = await visible(bootstrap, f"{namespace}{topics.ALERTS}")
    return sorted((str(orjson.loads(v or b"{}")["id"]), _fields(v or b"{}")) for _, _, v in seen)


async def _publish(bus: KafkaBus, rows: Sequence[Envelope], seconds: float) -> None:
    for index, row in enumerate(rows):
        await bus.publish(topics.HEALTH, row.key, row.to_json())
        if index % 25 == 0:
            await asyncio.sleep(seconds * 25 / len(rows))


@pytest.mark.timeout(90)
async def test_the_stage_on_kafka_publishes_the_evaluators_history(
    kafka_bootstrap: str, namespace: str
) -> None:
    rows = _rows()
    want = _expected(rows)
    assert {c["rule"] for _, c in want} >= {"asr_low", "trunk_cps_rejections", "cps_saturated"}
    async with KafkaBus(kafka_bootstrap, namespace=namespace, partitions=PARTITIONS) as bus:
        await _publish(bus, rows, 0)
        stage = KafkaAlertStage(
            kafka_bootstrap, default_rules(), namespace=namespace, partitions=PARTITIONS
        )
        async with stage:
            await eventually(lambda: _count(stage), lambda n: n >= len(want), timeout_s=60)
            await stage.drain(10)
    assert await _published(kafka_bootstrap, namespace) == want


async def _count(stage: KafkaAlertStage) -> int:
    return stage.published


@contextlib.contextmanager
def _alert_process(bootstrap: str, namespace: str, data: Path) -> Iterator[subprocess.Popen[bytes]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    environ.update(
        VOICEPULSE_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        VOICEPULSE_KAFKA_NAMESPACE=namespace,
        VOICEPULSE_KAFKA_TOPIC_PARTITIONS=str(PARTITIONS),
        VOICEPULSE_DATA_DIR=str(data),
        VOICEPULSE_ALERT_METRICS_PORT=str(free_port()),
        VOICEPULSE_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicepulse.cli", "alert"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.mark.timeout(150)
async def test_sigkill_at_random_instants_gives_the_uninterrupted_history(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    rows = _rows()
    want = _expected(rows)
    rng = random.Random(11)
    kills = 0
    async with KafkaBus(kafka_bootstrap, namespace=namespace, partitions=PARTITIONS) as bus:
        await bus.ensure_topics([topics.HEALTH])
        traffic = asyncio.create_task(_publish(bus, rows, seconds=8))
        while kills < 3 or not traffic.done():
            with _alert_process(kafka_bootstrap, namespace, tmp_path) as proc:
                await asyncio.sleep(rng.uniform(2.5, 4.5))
                assert proc.poll() is None, "the alert stage exited by itself"
                proc.kill()
                kills += 1
        await traffic
        with _alert_process(kafka_bootstrap, namespace, tmp_path):
            got = await eventually(
                lambda: _published(kafka_bootstrap, namespace),
                lambda seen: len(seen) >= len(want),
                timeout_s=60,
                interval_s=1.0,
            )
    assert kills >= 3
    assert [i for i, _ in got] == [i for i, _ in want]  # each change once, none missing
    assert got == want
