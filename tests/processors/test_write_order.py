"""On real Kafka: the processor applies a partition's input topics in the order they were
written even when the end offset a topic's last fetch reported is stale.

aiokafka leaves a topic partition out of its fetches while records it fetched earlier are still
being handed over; when the last of them is handed over, the partition's position equals the
end its last fetch reported, although records were written to it since. Taking that end as
"read to the end" released a record of another topic written after those records before them
(so a Call resource of a window was applied after a status callback that closed the window,
and counted as late, where an uninterrupted run had it on time)."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlencode

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from ingest.normalize import status_callback_envelope
from ingest.pollers.envelopes import call_envelope
from processors.engine import EngineConfig, Shard
from processors.kafka import KafkaProcessorStage
from processors.processor import Processor
from tests.helpers import eventually
from voicepulse import topics
from voicepulse.bus.kafka import KafkaBus
from voicepulse.bus.stateful import read_to_end
from voicepulse.envelope import Envelope
from voicepulse.messages import HealthWindow

SUB = "AC" + "3" * 32
PARENT = "AC" + "4" * 32
T0 = datetime(2026, 11, 26, 10, 5, 3, tzinfo=UTC)
CONFIG = EngineConfig()
PARTITIONS = 6


def _resource(n: int) -> Envelope:
    """A finished call's Call resource (a record of ``twilio.calls``), in the window of T0."""
    raw = {
        "sid": f"CA{n:032d}",
        "account_sid": SUB,
        "status": "completed",
        "direction": "outbound-api",
        "from": "+14155550100",
        "to": "+16285550100",
        "queue_time": "0",
        "duration": "20",
        "price": "-0.0130",
        "price_unit": "usd",
        "date_created": format_datetime(T0),
        "start_time": format_datetime(T0),
        "end_time": format_datetime(T0 + timedelta(seconds=20)),
    }
    return call_envelope(raw, PARENT)


def _closing_callback() -> Envelope:
    """A status callback of another call, so much later that it closes the window of T0."""
    at = T0 + timedelta(seconds=60 + CONFIG.grace_s + 300)
    params = [
        ("AccountSid", SUB),
        ("CallSid", "CA" + "9" * 32),
        ("CallStatus", "initiated"),
        ("Direction", "outbound-api"),
        ("From", "+14155550100"),
        ("To", "+16285550100"),
        ("SequenceNumber", "0"),
        ("Timestamp", format_datetime(at)),
    ]
    return status_callback_envelope(
        params, body=urlencode(params).encode(), idempotency_token=None, parent_account_sid=PARENT
    )


async def _publish(bus: KafkaBus, topic: str, envelope: Envelope) -> None:
    """Publish and wait into the next millisecond, so the next record is stamped later."""
    await bus.publish(topic, envelope.key, envelope.to_json())
    await asyncio.sleep(0.005)


@pytest.mark.timeout(60)
async def test_a_partition_read_to_the_end_of_a_stale_fetch_is_not_read_to_its_end(
    kafka_bootstrap: str, namespace: str
) -> None:
    """a1 and a2 are fetched together and handed over one at a time; a3, then b1, are written
    meanwhile and b1 is fetched (the fetches leave out ``a`` while a2 waits). Once a2 is
    handed over, ``a`` sits at the end its last fetch reported, yet a3 is still to come:
    :func:`read_to_end` must not count ``a`` as read to its end until a3 is read."""
    a, b = TopicPartition(f"{namespace}a", 0), TopicPartition(f"{namespace}b", 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(a.topic, 1, 1), NewTopic(b.topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    ends = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level="read_committed")
    await producer.start()
    await consumer.start()
    await ends.start()
    try:
        await producer.send_and_wait(a.topic, b"a1")
        await producer.send_and_wait(a.topic, b"a2")
        consumer.assign([a, b])
        await consumer.seek_to_beginning(a, b)
        first = await consumer.getmany(a, timeout_ms=10_000, max_records=1)
        assert [m.value for m in first[a]] == [b"a1"]
        await producer.send_and_wait(a.topic, b"a3")
        await producer.send_and_wait(b.topic, b"b1")
        fetched = await consumer.getmany(b, timeout_ms=10_000)
        assert [m.value for m in fetched[b]] == [b"b1"]
        rest = await consumer.getmany(a, timeout_ms=10_000)
        assert [m.value for m in rest[a]] == [b"a2"]
        assert consumer.last_stable_offset(a) == await consumer.position(a)  # the stale end
        assert await read_to_end(consumer, [a, b], ends) == {b}
        last = await consumer.getmany(a, timeout_ms=10_000)
        assert [m.value for m in last[a]] == [b"a3"]
        assert await read_to_end(consumer, [a, b], ends) == {a, b}
    finally:
        await ends.stop()
        await consumer.stop()
        await producer.stop()


@pytest.mark.timeout(90)
async def test_a_record_written_before_another_topics_record_is_applied_before_it(
    kafka_bootstrap: str, namespace: str
) -> None:
    """401 Call resources are on ``twilio.calls`` when the processor starts (one fetch, handed
    over two records a turn). Meanwhile one more resource, then a status callback that closes
    their window, are written. The processor applies them in that order, as an uninterrupted
    run in memory does: every row and every call equal the reference's, nothing is late."""
    fill = [_resource(n) for n in range(401)]
    resource, callback = _resource(401), _closing_callback()
    bus = KafkaBus(kafka_bootstrap, namespace=namespace, partitions=PARTITIONS)
    stage = KafkaProcessorStage(
        kafka_bootstrap,
        CONFIG,
        namespace=namespace,
        instance_id=uuid.uuid4().hex[:8],
        partitions=PARTITIONS,
        wall_clock_lag_s=None,
        max_records=2,
    )
    partitions = list(range(PARTITIONS))
    partition = DefaultPartitioner()(resource.key, partitions, partitions)
    async with bus:
        for envelope in fill:
            await bus.publish(topics.TWILIO_CALLS, envelope.key, envelope.to_json())
        async with stage:
            await eventually(_batches(stage), lambda n: n >= 3, timeout_s=30, interval_s=0.01)
            await _publish(bus, topics.TWILIO_CALLS, resource)
            await _publish(bus, topics.CALL_STATUS, callback)
            await eventually(_offsets(stage, partition), _all_applied(len(fill)), timeout_s=30)
            shard = stage.processor.shards[partition]
    reference = Processor(CONFIG).shard(partition)
    for envelope in (*fill, resource, callback):
        reference.apply(envelope)
    assert reference.closed, "the callback closed the resources' window"
    assert not any(row["late_events"] for row in reference.closed.values())
    assert _rows(shard) == _rows(reference)
    assert {sid: call.late for sid, call in shard.calls.items()} == {
        sid: call.late for sid, call in reference.calls.items()
    }


def _rows(shard: Shard) -> dict[object, HealthWindow]:
    return {key: shard.row(key) for key in [*shard.windows, *shard.closed]}


def _batches(stage: KafkaProcessorStage) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return stage.batches

    return probe


def _offsets(stage: KafkaProcessorStage, partition: int) -> Callable[[], Awaitable[dict[str, int]]]:
    async def probe() -> dict[str, int]:
        shard = stage.processor.shards.get(partition)
        return {} if shard is None else dict(shard.offsets)

    return probe


def _all_applied(filled: int) -> Callable[[dict[str, int]], bool]:
    def done(offsets: dict[str, int]) -> bool:
        return offsets.get(topics.TWILIO_CALLS) == filled + 1 and (
            offsets.get(topics.CALL_STATUS) == 1
        )

    return done
