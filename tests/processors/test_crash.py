"""On real Kafka: `voicepulse process` killed with SIGKILL at random points while traffic flows
converges to the uninterrupted truth; two processes in one group give what one gives."""

import asyncio
import dataclasses
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from ingest.tenants import TenantRegistry
from tests.processors.streams import normalise, within_alpha
from voicepulse import topics
from voicepulse.bus.kafka import KafkaBus
from voicepulse.envelope import Envelope
from voicepulse.traffic import PROFILES, SimTenant, delivery, envelopes, generate
from voicepulse.truth import expected_rows

TOPIC_OF = {
    "call-status": topics.CALL_STATUS,
    "debugger-event": topics.DEBUGGER,
    "call-resource": topics.TWILIO_CALLS,
    "insights-summary": topics.INSIGHTS,
}
Key = tuple[str, str, str]


def _scenario(tenants: TenantRegistry, seed: int) -> tuple[list[Envelope], dict[Key, Any]]:
    rng = random.Random(seed)
    profiles = [PROFILES[0], PROFILES[3], dataclasses.replace(PROFILES[5], lost_terminal_rate=0)]
    sims = [
        SimTenant(t.account_sid, t.parent_account_sid, profiles[i % 3], t.cps_limit, 1.0)
        for i, t in enumerate(tenants.values())
    ]
    model = generate(rng, sims, int(time.time()), 90)
    delivered = list(delivery(rng, envelopes(model), max_delay_s=30, duplicate_rate=0.1))
    truth = expected_rows(model, call_timeout_s=4 * 3600)
    return delivered, {(a, g, _iso(s)): row for (a, g, s), row in truth.items()}


def _iso(epoch: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat()


@contextmanager
def _processor(bootstrap: str, namespace: str, instance: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    env.update(
        VOICEPULSE_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        VOICEPULSE_KAFKA_NAMESPACE=namespace,
        VOICEPULSE_PROCESSOR_INSTANCE_ID=instance,
        VOICEPULSE_LOG_LEVEL="WARNING",
        # Event time only: on a loaded machine a restarted processor may fall behind the wall
        # clock by more than the grace, and then closing windows by the clock would (rightly)
        # count events as late. Closing idle windows by the clock is tested in test_stage.py.
        VOICEPULSE_PROCESSOR_WALL_CLOCK_LAG_S="1e9",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicepulse.cli", "process"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


async def _publish(bus: KafkaBus, delivered: list[Envelope], seconds: float) -> None:
    pause = seconds / len(delivered)
    for index, envelope in enumerate(delivered):
        await bus.publish(TOPIC_OF[envelope.type], envelope.key, envelope.to_json())
        if index % 20 == 0:
            await asyncio.sleep(pause * 20)


async def _latest_rows(bootstrap: str, namespace: str) -> dict[Key, dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        f"{namespace}{topics.HEALTH}",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    rows: dict[Key, dict[str, Any]] = {}
    try:
        while batch := await consumer.getmany(timeout_ms=1500, max_records=10000):
            for messages in batch.values():
                for message in messages:
                    e = Envelope.from_json(message.value)
                    rows[(e.account_sid, e.fields["direction_group"], e.fields["window_start"])] = (
                        dict(e.fields)
                    )
    finally:
        await consumer.stop()
    return rows


def _differences(rows: dict[Key, dict[str, Any]], truth: dict[Key, Any]) -> list[Key]:
    wrong = []
    for key in sorted(set(rows) | set(truth)):
        got, want = rows.get(key), truth.get(key)
        if normalise(got) != normalise(want):
            wrong.append(key)
        elif got is not None and want is not None:
            for name in ("queue_time_p50_ms", "queue_time_p95_ms"):
                if not within_alpha(got[name], want[name]):
                    wrong.append(key)
    return wrong


async def _converged(
    bootstrap: str, namespace: str, truth: dict[Key, Any], timeout_s: float
) -> list[Key]:
    deadline = time.monotonic() + timeout_s
    wrong: list[Key] = []
    while time.monotonic() < deadline:
        wrong = _differences(await _latest_rows(bootstrap, namespace), truth)
        if not wrong:
            return []
        await asyncio.sleep(2)
    return wrong


@pytest.mark.timeout(240)
async def test_sigkill_at_random_points_converges_to_the_truth(
    kafka_bootstrap: str, namespace: str, demo_tenants: TenantRegistry
) -> None:
    rng = random.Random(7)
    delivered, truth = _scenario(demo_tenants, seed=11)
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        traffic = asyncio.create_task(_publish(bus, delivered, seconds=30))
        kills = 0
        while kills < 5 or not traffic.done():
            with _processor(kafka_bootstrap, namespace, "0") as proc:
                await asyncio.sleep(rng.uniform(2.0, 7.0))
                assert proc.poll() is None, "the processor exited by itself"
                proc.kill()
                kills += 1
        await traffic
        with _processor(kafka_bootstrap, namespace, "0"):
            wrong = await _converged(kafka_bootstrap, namespace, truth, timeout_s=90)
    finally:
        await bus.stop()
    assert kills >= 5
    assert not wrong, f"{len(wrong)} windows differ from the truth, e.g. {wrong[:3]}"


@pytest.mark.timeout(240)
async def test_two_processes_in_one_group_give_the_truth(
    kafka_bootstrap: str, namespace: str, demo_tenants: TenantRegistry
) -> None:
    delivered, truth = _scenario(demo_tenants, seed=12)
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        with (
            _processor(kafka_bootstrap, namespace, "a"),
            _processor(kafka_bootstrap, namespace, "b"),
        ):
            await _publish(bus, delivered, seconds=10)
            wrong = await _converged(kafka_bootstrap, namespace, truth, timeout_s=90)
    finally:
        await bus.stop()
    assert not wrong, f"{len(wrong)} windows differ from the truth, e.g. {wrong[:3]}"
