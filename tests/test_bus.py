"""One contract, two buses: the in-process bus must behave as the Kafka bus does."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from voicepulse.bus import InProcessBus, KafkaBus
from voicepulse.errors import BusError
from voicepulse.types import Bus, Record, TopicPartition

TOPIC = "voicepulse.health"


@pytest.fixture(params=["in-process", "kafka"])
async def bus(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Bus]:
    if request.param == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        made: Bus = KafkaBus(bootstrap, namespace=namespace, partitions=1)
    else:
        made = InProcessBus()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def _drain(bus: Bus, group: str, commit: bool) -> list[bytes]:
    consumer = bus.consumer([TOPIC], group)
    await consumer.start()
    try:
        seen: list[bytes] = []
        while batch := await consumer.poll(timeout_s=1.0, max_records=100):
            seen.extend(r.value for r in batch)
            if commit:
                await consumer.commit({TopicPartition(TOPIC, 0): batch[-1].offset + 1})
        return seen
    finally:
        await consumer.stop()


async def test_records_come_back_in_order_with_keys(bus: Bus) -> None:
    for i in range(5):
        await bus.publish(TOPIC, b"AC1", f"m{i}".encode())
    consumer = bus.consumer([TOPIC], "order")
    await consumer.start()
    try:
        records: list[Record] = []
        while len(records) < 5:
            batch = await consumer.poll(timeout_s=5.0, max_records=100)
            assert batch, "nothing came back"
            records.extend(batch)
    finally:
        await consumer.stop()
    assert [r.value for r in records] == [f"m{i}".encode() for i in range(5)]
    assert {r.key for r in records} == {b"AC1"}
    assert [r.topic for r in records] == [TOPIC] * 5
    assert [r.offset for r in records] == list(range(5))


async def test_a_group_resumes_after_its_last_commit(bus: Bus) -> None:
    for i in range(3):
        await bus.publish(TOPIC, b"AC1", f"a{i}".encode())
    assert await _drain(bus, "resume", commit=True) == [b"a0", b"a1", b"a2"]
    await bus.publish(TOPIC, b"AC1", b"a3")
    assert await _drain(bus, "resume", commit=True) == [b"a3"]


async def test_uncommitted_records_are_read_again(bus: Bus) -> None:
    await bus.publish(TOPIC, b"AC1", b"once")
    assert await _drain(bus, "replay", commit=False) == [b"once"]
    assert await _drain(bus, "replay", commit=False) == [b"once"]


async def test_groups_are_independent(bus: Bus) -> None:
    await bus.publish(TOPIC, b"AC1", b"x")
    assert await _drain(bus, "first", commit=True) == [b"x"]
    assert await _drain(bus, "second", commit=True) == [b"x"]


async def test_concurrent_publishes_keep_their_order_per_key(bus: Bus) -> None:
    await _publish_concurrently_and_check_order(bus)


async def test_grouped_batches_over_partitions_keep_their_order_per_key(
    kafka_bootstrap: str, namespace: str
) -> None:
    bus = KafkaBus(kafka_bootstrap, namespace=namespace, partitions=4)
    await bus.start()
    try:
        await _publish_concurrently_and_check_order(bus)
    finally:
        await bus.stop()


async def _publish_concurrently_and_check_order(bus: Bus) -> None:
    # Started together, so they are grouped into shared batches on Kafka; each key's records
    # must still come back in the order their publishes started.
    keys = [f"AC{k}".encode() for k in range(7)]
    sent = [(keys[i % len(keys)], f"{i % len(keys)}:{i}".encode()) for i in range(2000)]
    await asyncio.gather(*(bus.publish(TOPIC, key, value) for key, value in sent))
    await asyncio.gather(*(bus.publish(TOPIC, key, b"late:" + key) for key in keys))
    seen = await _drain(bus, "grouped", commit=False)
    assert sorted(seen) == sorted([value for _, value in sent] + [b"late:" + k for k in keys])
    for k, key in enumerate(keys):
        mine = [v for v in seen if v.startswith(f"{k}:".encode()) or v == b"late:" + key]
        assert mine == [value for kk, value in sent if kk == key] + [b"late:" + key]


async def test_a_stopped_bus_refuses_to_publish(bus: Bus) -> None:
    await bus.stop()
    with pytest.raises(BusError):
        await bus.publish(TOPIC, b"AC1", b"x")
