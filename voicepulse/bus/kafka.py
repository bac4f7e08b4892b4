"""The Kafka bus (aiokafka): an idempotent producer with acks=all, and consumer groups.

aiokafka's errors are translated into :mod:`voicepulse.errors` in :mod:`voicepulse.bus` and
nowhere else.
"""

import asyncio
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    UnknownProducerId,
)

from voicepulse.bus.admin import ensure_topics
from voicepulse.bus.batching import ProduceBatcher
from voicepulse.errors import BusError, BusUnavailable
from voicepulse.lifecycle import Lifecycle
from voicepulse.topics import ALL_TOPICS
from voicepulse.types import Record, TopicPartition

__all__ = ["KafkaBus", "consumer_lag"]

logger = logging.getLogger(__name__)

_MAX_BATCH_BYTES = 512 * 1024
_MAX_RECORD_BYTES = 1024 * 1024
# The broker refuses every later batch of a producer whose sequence numbers it lost track of
# (after a broker restart or a log truncation); only a new producer id sends again.
_PRODUCER_LOST = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)


class KafkaBus(Lifecycle):
    """Implements :class:`voicepulse.types.Bus` on Kafka.

    :meth:`publish` returns only once every in-sync replica has the record (acks=all, idempotent
    producer), and raises :class:`BusUnavailable` when Kafka refuses it or does not acknowledge
    it within ``delivery_timeout_s`` (the producer's own request timeout). Concurrent publishes
    are sent together in grouped batches (:mod:`voicepulse.bus.batching`), in order per key.
    A caller with a shorter deadline of its own (the receiver) enforces it itself.
    Topics are created on start when missing, with the configured partitions.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "voicepulse",
        partitions: int = 6,
        replication_factor: int = 1,
        delivery_timeout_s: float = 30.0,
        namespace: str = "",
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._partitions = partitions
        self._replication = replication_factor
        self._delivery_timeout_s = delivery_timeout_s
        self._namespace = namespace
        self._producer: AIOKafkaProducer | None = None
        self._batcher: ProduceBatcher | None = None
        self._started = False
        self._replacing: asyncio.Future[None] | None = None
        self.producers_replaced = 0

    def physical(self, name: str) -> str:
        """The broker-side name of a topic or group, with this bus's namespace."""
        return f"{self._namespace}{name}"

    async def start(self) -> None:
        if self._producer is not None:
            return
        await self.ensure_topics(ALL_TOPICS)
        await self._start_producer()
        self._started = True

    async def _start_producer(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            # Grouped batches are closed when submitted, so they never linger; one batch per
            # partition per cycle needs room for every concurrent record.
            max_batch_size=_MAX_BATCH_BYTES,
            request_timeout_ms=int(self._delivery_timeout_s * 1000),
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise BusUnavailable(f"Kafka at {self._bootstrap} did not answer: {exc}") from exc
        self._producer = producer
        self._batcher = ProduceBatcher(
            producer, timeout_s=self._delivery_timeout_s, max_record_bytes=_MAX_RECORD_BYTES
        )
        self._batcher.start()

    async def stop(self) -> None:
        self._started = False
        if self._replacing is not None:
            await asyncio.gather(self._replacing, return_exceptions=True)
        await self._stop_producer()

    async def _stop_producer(self, timeout_s: float = 10.0) -> None:
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await batcher.stop(timeout_s)
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are."""
        await ensure_topics(
            self._bootstrap,
            [self.physical(t) for t in topics],
            partitions=self._partitions,
            replication_factor=self._replication,
            client_id=self._client_id,
        )

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if self._batcher is None:
            if not self._started:
                raise BusError("the Kafka bus is not started")
            self._replace_producer(None)
            raise BusUnavailable("the Kafka producer is being replaced")
        try:
            # Queued before the first await: publishes started in some order keep that order.
            await self._batcher.submit(self.physical(topic), key, value)
        except BusUnavailable as exc:
            if isinstance(exc.__cause__, _PRODUCER_LOST):
                self._replace_producer(exc.__cause__)
            raise

    def _replace_producer(self, cause: BaseException | None) -> None:
        """Start replacing the producer (once at a time); publishes meanwhile are refused with
        :class:`BusUnavailable`, which the receiver answers by spooling."""
        if self._replacing is not None and not self._replacing.done():
            return
        if cause is not None:
            logger.warning(
                "Kafka refuses this producer's batches (%r): replacing it with a new producer",
                cause,
            )
        self._replacing = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        await self._stop_producer(timeout_s=1.0)
        try:
            await self._start_producer()
        except BusUnavailable as exc:  # the next publish tries again
            logger.warning("replacing the Kafka producer failed: %s", exc)
        else:
            self.producers_replaced += 1
            logger.info("a new Kafka producer sends again")

    def consumer(self, topics: Sequence[str], group: str) -> "KafkaConsumer":
        return KafkaConsumer(self, tuple(topics), group)

    def _new_consumer(self, topics: tuple[str, ...], group: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *(self.physical(t) for t in topics),
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            group_id=self.physical(group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )


class KafkaConsumer(Lifecycle):
    """One member of a Kafka consumer group; offsets move only on :meth:`commit`."""

    def __init__(self, bus: KafkaBus, topics: tuple[str, ...], group: str) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        self._logical = {bus.physical(t): t for t in topics}
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        if self._consumer is not None:
            return
        await self._bus.ensure_topics(self._topics)
        consumer = self._bus._new_consumer(self._topics, self._group)
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise BusUnavailable(f"could not join group {self._group}: {exc}") from exc
        self._consumer = consumer

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def poll(self, timeout_s: float, max_records: int) -> Sequence[Record]:
        if self._consumer is None:
            raise BusError("the consumer is not started")
        try:
            batches = await self._consumer.getmany(
                timeout_ms=int(timeout_s * 1000), max_records=max_records
            )
        except KafkaError as exc:
            raise BusUnavailable(f"polling {', '.join(self._topics)} failed: {exc}") from exc
        return [
            Record(self._logical[tp.topic], tp.partition, m.offset, m.key, m.value)
            for tp, messages in batches.items()
            for m in messages
        ]

    async def lag(self) -> dict[TopicPartition, int]:
        if self._consumer is None:
            return {}
        return await consumer_lag(self._consumer, self._logical)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._consumer is None:
            raise BusError("the consumer is not started")
        if not offsets:
            return
        native = {
            KafkaTopicPartition(self._bus.physical(tp.topic), tp.partition): offset
            for tp, offset in offsets.items()
        }
        try:
            await self._consumer.commit(native)
        except KafkaError as exc:
            raise BusError(f"committing offsets for group {self._group} failed: {exc}") from exc


async def consumer_lag(
    consumer: AIOKafkaConsumer, logical: Mapping[str, str]
) -> dict[TopicPartition, int]:
    """Per partition assigned to ``consumer``: its end offset as last fetched (the last stable
    offset under ``read_committed``) minus the position, under its plain topic name
    (``logical`` maps the broker's names to them). A partition not fetched yet is left out."""
    lag: dict[TopicPartition, int] = {}
    try:
        for tp in consumer.assignment():
            end = consumer.last_stable_offset(tp)
            if end is None:
                end = consumer.highwater(tp)
            if end is not None:
                position = await consumer.position(tp)
                lag[TopicPartition(logical[tp.topic], tp.partition)] = max(0, end - position)
    except KafkaError as exc:  # a rebalance under way: the next call has it
        logger.debug("consumer lag unavailable: %r", exc)
    return lag
