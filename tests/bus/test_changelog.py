"""On real Kafka: a changelog partition read back gives, per key, the last committed value."""

import pytest

from tests.bus.kafka import topics
from voicepulse.bus import Transaction, TransactionalProducer, read_changelog

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(60)]


async def test_restore_reads_back_the_last_value_per_key_of_its_partition(
    kafka_bootstrap: str, namespace: str
) -> None:
    await topics(kafka_bootstrap, namespace)
    producer = TransactionalProducer(
        kafka_bootstrap, "tx-0", group="group", changelog="log", namespace=namespace
    )
    async with producer:
        for entries in (
            [(b"a", b"1"), (b"b", b"1"), (b"gone", b"1")],
            [(b"a", b"2"), (b"gone", None)],
            [(b"c", b"1"), (b"a", b"3")],
        ):
            tx = Transaction()
            for key, value in entries:
                tx.log(1, key, value)
            tx.log(0, b"a", b"other partition")
            await producer.commit(tx)
    state: dict[bytes, bytes] = {}
    async for key, value in read_changelog(kafka_bootstrap, f"{namespace}log", 1):
        if value is None:
            del state[key]
        else:
            state[key] = value
    assert state == {b"a": b"3", b"b": b"1", b"c": b"1"}


async def test_an_empty_partition_reads_as_no_entries(kafka_bootstrap: str, namespace: str) -> None:
    await topics(kafka_bootstrap, namespace)
    assert [e async for e in read_changelog(kafka_bootstrap, f"{namespace}log", 2)] == []
