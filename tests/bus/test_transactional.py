"""On real Kafka: outputs, changelog entries and input offsets commit together or not at all;
a fenced producer stops; a failed transaction is rolled back and the producer goes on."""

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import LeaderNotAvailableError

from tests.bus.kafka import PARTITIONS, committed, topics, visible
from tests.ingest.support import OwnKafka, own_kafka_broker
from voicepulse.bus import Transaction, TransactionalProducer
from voicepulse.errors import BusUnavailable, TransactionAborted
from voicepulse.types import Record
from voicepulse.types import TopicPartition as PlainTopicPartition

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(90)]


def _producer(bootstrap: str, namespace: str) -> TransactionalProducer:
    return TransactionalProducer(
        bootstrap, "tx-0", group="group", changelog="log", namespace=namespace, name="tester"
    )


def _tx(n: int) -> Transaction:
    tx = Transaction()
    tx.send("out", b"k", f"out{n}".encode())
    tx.log(2, b"state", f"state{n}".encode())
    tx.consumed([Record("in", 0, n, b"k", b"input")])
    return tx


Seen = tuple[list[bytes | None], list[tuple[int, bytes, bytes | None]], int | None]


def _seen(n: int) -> Seen:
    """What ``read_committed`` readers see after ``_tx(n)`` alone was committed."""
    return [f"out{n}".encode()], [(2, b"state", f"state{n}".encode())], n + 1


async def _committed_tx(bootstrap: str, namespace: str) -> Seen:
    """The values on ``out``, the changelog entries and the group's offset on ``in`` [0]."""
    out = [v for _, _, v in await visible(bootstrap, f"{namespace}out")]
    log = await visible(bootstrap, f"{namespace}log")
    offset = await committed(bootstrap, f"{namespace}group", TopicPartition(f"{namespace}in", 0))
    return out, log, offset


async def test_a_transaction_commits_outputs_changelog_entries_and_offsets_together(
    kafka_bootstrap: str, namespace: str
) -> None:
    await topics(kafka_bootstrap, namespace, "in", "out")
    async with _producer(kafka_bootstrap, namespace) as producer:
        await producer.commit(_tx(4))
    assert await _committed_tx(kafka_bootstrap, namespace) == _seen(4)


async def test_a_transaction_never_committed_leaves_nothing_visible(
    kafka_bootstrap: str, namespace: str
) -> None:
    """A producer that crashed mid-transaction (records sent, never committed): once the next
    producer with its transactional id starts, ``read_committed`` readers see none of it, nor
    its offsets, and see what the new one commits."""
    await topics(kafka_bootstrap, namespace, "in", "out")
    crashed = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{namespace}tx-0"
    )
    await crashed.start()
    await crashed.begin_transaction()
    await crashed.send_and_wait(f"{namespace}out", b"lost", key=b"k")
    await crashed.send_and_wait(f"{namespace}log", b"lost", key=b"state", partition=2)
    await crashed.send_offsets_to_transaction(
        {TopicPartition(f"{namespace}in", 0): 100}, f"{namespace}group"
    )
    await crashed.stop()  # closes its connections without ending the transaction, as a crash
    async with _producer(kafka_bootstrap, namespace) as producer:
        await producer.commit(_tx(7))
    written = await visible(kafka_bootstrap, f"{namespace}out", committed_only=False)
    assert b"lost" in [v for _, _, v in written], "the crashed transaction's records were written"
    assert await _committed_tx(kafka_bootstrap, namespace) == _seen(7)


async def test_a_fenced_producer_raises_bus_unavailable(
    kafka_bootstrap: str, namespace: str
) -> None:
    await topics(kafka_bootstrap, namespace, "in", "out")
    async with _producer(kafka_bootstrap, namespace) as first:
        await first.commit(_tx(0))
        async with _producer(kafka_bootstrap, namespace) as second:
            with pytest.raises(BusUnavailable, match="the tester was fenced"):
                await first.commit(_tx(1))
            await second.commit(_tx(2))
    assert [v for _, _, v in await visible(kafka_bootstrap, f"{namespace}out")] == [
        b"out0",
        b"out2",
    ]


async def test_a_failed_transaction_is_rolled_back_and_the_next_one_commits(
    kafka_bootstrap: str, namespace: str
) -> None:
    """While the changelog refuses the entries (``max.message.bytes`` below their size), the
    transaction fails with :class:`TransactionAborted` and none of it is visible; the same
    producer then commits the next one (its entries fit)."""
    # The limit is set when the topic is made: a limit altered later reaches the partition's
    # log a moment after the broker acknowledged it, and a send in between is accepted.
    await _compacted_topic(kafka_bootstrap, f"{namespace}log", max_message_bytes=300)
    await topics(kafka_bootstrap, namespace, "in", "out")
    big = Transaction()
    big.send("out", b"k", b"refused")
    big.log(1, b"state", b"x" * 2000)
    big.consumed([Record("in", 0, 50, b"k", b"input")])
    async with _producer(kafka_bootstrap, namespace) as producer:
        with pytest.raises(TransactionAborted):
            await producer.commit(big)
        await producer.commit(_tx(3))
    assert await _committed_tx(kafka_bootstrap, namespace) == _seen(3)


async def test_the_offsets_are_those_after_the_last_record_of_each_partition() -> None:
    tx = Transaction()
    assert not tx
    tx.consumed([Record("a", 0, 3, None, b""), Record("a", 0, 4, None, b"")])
    tx.consumed([Record("a", 1, 9, None, b"")])
    assert tx
    assert tx.offsets == {PlainTopicPartition("a", 0): 5, PlainTopicPartition("a", 1): 10}


async def _compacted_topic(bootstrap: str, topic: str, *, max_message_bytes: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"cleanup.policy": "compact", "max.message.bytes": str(max_message_bytes)}
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1, topic_configs=config)])
    finally:
        await admin.close()


@pytest.mark.timeout(400)
async def test_a_broker_restart_at_a_transaction_aborts_it_and_the_producer_goes_on() -> None:
    """A transaction fails as the broker goes away (LeaderNotAvailable, as a broker stopping
    answers): the new producer's start is retried until the broker is back (not given up at
    once, which stopped the stage), the transaction is aborted for the caller to redo, and the
    next one commits."""
    with own_kafka_broker() as kafka:
        bootstrap = kafka.bootstrap
        namespace = "restart-"
        await topics(bootstrap, namespace, "in", "out")
        async with _producer(bootstrap, namespace) as producer:
            await producer.commit(_tx(1))
            await asyncio.to_thread(kafka.stop)
            failing = producer._producer
            assert failing is not None
            failing.begin_transaction = _leader_not_available
            restarted = asyncio.get_running_loop().run_in_executor(None, _start_later, kafka)
            with pytest.raises(TransactionAborted):
                await producer.commit(_tx(2))
            await restarted
            await producer.commit(_tx(3))
        assert await _committed_tx(bootstrap, namespace) == (
            [b"out1", b"out3"],
            [(2, b"state", b"state1"), (2, b"state", b"state3")],
            4,
        )


async def _leader_not_available() -> None:
    raise LeaderNotAvailableError()


def _start_later(kafka: OwnKafka) -> None:
    time.sleep(3)
    kafka.start()
