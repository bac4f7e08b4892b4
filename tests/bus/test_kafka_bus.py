"""On real Kafka: a producer the broker no longer takes batches from is replaced."""

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import OutOfOrderSequenceNumber

from voicepulse import topics
from voicepulse.bus.kafka import KafkaBus
from voicepulse.errors import BusUnavailable


async def _values(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        return [m.value for messages in batches.values() for m in messages if m.value]
    finally:
        await consumer.stop()


@pytest.mark.timeout(60)
async def test_a_producer_out_of_sequence_is_replaced(kafka_bootstrap: str, namespace: str) -> None:
    """After a broker restart the broker may answer every batch of a producer with
    OutOfOrderSequenceNumber for good: the bus refuses that publish (the receiver spools it),
    starts a new producer, and later publishes reach the topic."""
    async with KafkaBus(kafka_bootstrap, namespace=namespace) as bus:
        await bus.publish(topics.CALL_STATUS, b"AC1", b"before")
        wedged = bus._producer
        assert wedged is not None

        async def refused(*args: Any, **kwargs: Any) -> "asyncio.Future[Any]":
            ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            ack.set_exception(OutOfOrderSequenceNumber())
            return ack

        wedged.send_batch = refused
        with pytest.raises(BusUnavailable):
            await bus.publish(topics.CALL_STATUS, b"AC1", b"refused")
        for _ in range(100):
            try:
                await bus.publish(topics.CALL_STATUS, b"AC1", b"after")
            except BusUnavailable:
                await asyncio.sleep(0.1)
            else:
                break
        assert bus.producers_replaced == 1
        assert bus._producer is not wedged
    values = await _values(kafka_bootstrap, bus.physical(topics.CALL_STATUS))
    assert values == [b"before", b"after"]
