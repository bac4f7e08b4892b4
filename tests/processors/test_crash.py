"""On real Kafka and a real DuckLake: `voicepulse process` killed with SIGKILL at random points
while traffic flows leaves the warehouse equal to the uninterrupted truth (with late events
too); two processes in one group leave what one leaves."""

import asyncio
import random
from collections import Counter, defaultdict

import pytest
from aiokafka import AIOKafkaConsumer

from ingest.tenants import TenantRegistry
from tests.conftest import SettingsFactory
from tests.processors.kafka_run import (
    TOPIC_OF,
    Scenario,
    converged,
    processor_process,
    publish,
    scenario,
    sink,
)
from voicepulse.bus.kafka import KafkaBus


async def kill_while_publishing(
    bus: KafkaBus,
    want: Scenario,
    kafka: tuple[str, str],
    *,
    seconds: float,
    min_kills: int,
    rng: random.Random,
    pause: float,
) -> int:
    """Publish ``want``'s traffic over ``seconds`` while a processor (instance "0" on
    ``kafka`` = (bootstrap, namespace)) runs 2 to ``pause`` seconds at a time and is then
    SIGKILLed; go on until the traffic is out and it was killed ``min_kills`` times. Returns
    how many kills there were."""
    traffic = asyncio.create_task(publish(bus, want.delivered, seconds=seconds))
    kills = 0
    while kills < min_kills or not traffic.done():
        with processor_process(*kafka, "0") as proc:
            await asyncio.sleep(rng.uniform(2.0, pause))
            assert proc.poll() is None, "the processor exited by itself"
            proc.kill()
            kills += 1
    await traffic
    return kills


@pytest.mark.timeout(60)
async def test_the_kill_tests_traffic_never_writes_two_records_of_a_partition_in_one_millisecond(
    kafka_bootstrap: str, namespace: str, demo_tenants: TenantRegistry
) -> None:
    """The in-memory reference applies records in the order written, the processor by write
    time with ties broken by topic: the two agree only if no partition has two records in
    one millisecond (``publish``'s docstring)."""
    want = scenario(demo_tenants, seed=13, seconds=20, max_delay_s=300)
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        await publish(bus, want.delivered, seconds=1)
    finally:
        await bus.stop()
    consumer = AIOKafkaConsumer(
        *(namespace + topic for topic in set(TOPIC_OF.values())),
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    written: dict[int, list[int]] = defaultdict(list)
    try:
        while sum(map(len, written.values())) < len(want.delivered):
            batches = await consumer.getmany(timeout_ms=5000)
            assert batches, "fewer records on the topics than were published"
            for tp, messages in batches.items():
                written[tp.partition].extend(m.timestamp for m in messages)
    finally:
        await consumer.stop()
    for partition, stamps in written.items():
        shared = sorted(stamp for stamp, n in Counter(stamps).items() if n > 1)
        assert not shared, f"partition {partition}: records written in one millisecond {shared}"


@pytest.mark.timeout(180)
async def test_sigkill_at_random_points_leaves_the_warehouse_equal_to_the_truth(
    kafka_bootstrap: str,
    namespace: str,
    demo_tenants: TenantRegistry,
    settings_factory: SettingsFactory,
) -> None:
    """At least 5 kills while 25 s of traffic flows; the sink runs throughout. The final
    ``health_minute`` rows equal the generator's (subaccounts and ISV), and the ``calls`` rows
    equal the latest facts of an uninterrupted run (and the generator's call outcomes)."""
    rng = random.Random(7)
    want = scenario(demo_tenants, seed=11)
    settings = settings_factory(kafka_bootstrap_servers=kafka_bootstrap)
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        async with sink(settings, namespace):
            kills = await kill_while_publishing(
                bus, want, (kafka_bootstrap, namespace), seconds=25, min_kills=5, rng=rng, pause=6.0
            )
            with processor_process(kafka_bootstrap, namespace, "0"):
                wrong = await converged(settings, want, timeout_s=60)
    finally:
        await bus.stop()
    assert kills >= 5
    assert not wrong, f"{len(wrong)} differences from the truth, e.g. {wrong[:3]}"


@pytest.mark.timeout(180)
async def test_two_processes_in_one_group_leave_the_warehouse_one_leaves(
    kafka_bootstrap: str,
    namespace: str,
    demo_tenants: TenantRegistry,
    settings_factory: SettingsFactory,
) -> None:
    want = scenario(demo_tenants, seed=12)
    settings = settings_factory(kafka_bootstrap_servers=kafka_bootstrap)
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        async with sink(settings, namespace):
            with (
                processor_process(kafka_bootstrap, namespace, "a"),
                processor_process(kafka_bootstrap, namespace, "b"),
            ):
                await publish(bus, want.delivered, seconds=10)
                wrong = await converged(settings, want, timeout_s=60)
    finally:
        await bus.stop()
    assert not wrong, f"{len(wrong)} differences from the truth, e.g. {wrong[:3]}"


@pytest.mark.timeout(180)
async def test_with_events_beyond_the_grace_kills_leave_the_uninterrupted_warehouse(
    kafka_bootstrap: str,
    namespace: str,
    demo_tenants: TenantRegistry,
    settings_factory: SettingsFactory,
) -> None:
    """Events delayed up to 300 s (beyond the 120 s grace: many are late) and 3 kills: the
    health rows, ``late_events`` included, and the call facts, ``late`` included, equal those
    of an uninterrupted run in memory. On event time alone, what is late depends only on the
    order the records were written, not on when they were read."""
    rng = random.Random(8)
    want = scenario(demo_tenants, seed=13, seconds=60, max_delay_s=300)
    assert any(row["late_events"] for row in want.rows.values())
    settings = settings_factory(kafka_bootstrap_servers=kafka_bootstrap)
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        async with sink(settings, namespace):
            await kill_while_publishing(
                bus, want, (kafka_bootstrap, namespace), seconds=12, min_kills=3, rng=rng, pause=5.0
            )
            with processor_process(kafka_bootstrap, namespace, "0"):
                wrong = await converged(settings, want, timeout_s=60)
    finally:
        await bus.stop()
    assert not wrong, f"{len(wrong)} differences from the uninterrupted run, e.g. {wrong[:3]}"
