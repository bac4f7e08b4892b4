"""On real Kafka and a real DuckLake: a processor transaction that the broker refuses is
aborted, the shards are restored from the changelog, the consumer is rewound to the committed
offsets, and the processor carries on to the uninterrupted result: nothing doubled, nothing
lost."""

import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ingest.tenants import TenantRegistry
from processors.kafka import CHANGELOG, KafkaProcessorStage
from tests.conftest import SettingsFactory
from tests.helpers import eventually, read_topic
from tests.processors.kafka_run import converged, processor_process, publish, scenario
from voicepulse import topics
from voicepulse.bus.kafka import KafkaBus
from voicepulse.pipeline import Role, build_pipeline


async def _max_message_bytes(bootstrap: str, topic: str, value: str | None) -> None:
    """Set (or, with None, reset to the broker's default) a topic's ``max.message.bytes``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"max.message.bytes": value if value is not None else "1048588"}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, config)])
    finally:
        await admin.close()


@pytest.mark.timeout(180)
async def test_a_refused_transaction_is_rolled_back_and_redone(
    kafka_bootstrap: str,
    namespace: str,
    demo_tenants: TenantRegistry,
    settings_factory: SettingsFactory,
) -> None:
    """While the changelog topic refuses batches of state entries (``max.message.bytes`` below
    their size, above a transaction marker's: the broker answers MESSAGE_TOO_LARGE), each
    transaction fails; once it takes them again, the same processor, never restarted, brings
    the warehouse to the truth, and every call-fact version is on ``voicepulse.calls`` exactly
    once."""
    want = scenario(demo_tenants, seed=21, seconds=60)
    third = len(want.delivered) // 3
    settings = settings_factory(
        kafka_bootstrap_servers=kafka_bootstrap, processor_wall_clock_lag_s=1e9
    )
    pipeline = build_pipeline(settings, {Role.PROCESS, Role.SINK}, namespace=namespace)
    async with KafkaBus(kafka_bootstrap, namespace=namespace) as bus, pipeline:
        stage = next(s for s in pipeline.stages if isinstance(s, KafkaProcessorStage))
        await publish(bus, want.delivered[:third], seconds=3)
        await stage.drain(10)
        committed = stage.batches
        await _max_message_bytes(kafka_bootstrap, f"{namespace}{CHANGELOG}", "300")
        await publish(bus, want.delivered[third : 2 * third], seconds=3)

        async def recoveries() -> int:
            return stage.recoveries

        await eventually(recoveries, lambda n: n >= 3, timeout_s=30)
        assert stage.task is not None
        assert not stage.task.done()
        await _max_message_bytes(kafka_bootstrap, f"{namespace}{CHANGELOG}", None)
        await publish(bus, want.delivered[2 * third :], seconds=3)
        wrong = await converged(settings, want, timeout_s=60)
        assert stage.task is not None
        assert not stage.task.done()
        assert stage.batches > committed
    assert not wrong, f"{len(wrong)} differences from the truth, e.g. {wrong[:3]}"
    facts = Counter(e.id for e in await read_topic(kafka_bootstrap, namespace, topics.CALLS))
    doubled = [fact for fact, copies in facts.items() if copies > 1]
    assert not doubled, f"{len(doubled)} call-fact versions published twice, e.g. {doubled[:3]}"


@pytest.mark.timeout(90)
async def test_a_fenced_processor_stops_instead_of_fencing_back(
    kafka_bootstrap: str, namespace: str, demo_tenants: TenantRegistry, tmp_path: Path
) -> None:
    """Another producer with the processor's transactional id (a second process started with
    the same instance id) fences it: its next transaction fails and `voicepulse process`
    exits with the reason, rather than taking the id back and fencing the other in turn."""
    want = scenario(demo_tenants, seed=22, seconds=20)
    log = tmp_path / "process.log"
    other = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{namespace}voicepulse-process-0"
    )
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        with processor_process(kafka_bootstrap, namespace, "0", stderr=log) as proc:
            await publish(bus, want.delivered[:50], seconds=1)
            await eventually(_rows_published(kafka_bootstrap, namespace), bool, timeout_s=30)
            await other.start()  # fences the processor's producer
            await publish(bus, want.delivered[50:], seconds=1)
            code = await eventually(_exit_code(proc), lambda c: c is not None, timeout_s=30)
    finally:
        await other.stop()
        await bus.stop()
    assert code != 0
    assert "the processor was fenced" in log.read_text()
    assert "restoring and rewinding" not in log.read_text()


def _rows_published(bootstrap: str, namespace: str) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return len(await read_topic(bootstrap, namespace, topics.HEALTH))

    return probe


def _exit_code(proc: subprocess.Popen[bytes]) -> Callable[[], Awaitable[int | None]]:
    async def probe() -> int | None:
        return proc.poll()

    return probe
