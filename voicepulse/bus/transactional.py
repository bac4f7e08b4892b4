"""Outputs, changelog entries and input offsets in one Kafka transaction.

:meth:`TransactionalProducer.commit` writes one :class:`Transaction`:

1. Begin a transaction (transactional id ``<namespace><transactional id>``).
2. Send the outputs, in the order given.
3. Send the changelog entries, each on the changelog partition given (a stage's state for
   input partition *n* lives on changelog partition *n*).
4. Wait until every record sent is acknowledged.
5. Add the input offsets to the transaction (``send_offsets_to_transaction``, for the group).
6. Commit it.

Either all of it becomes visible to ``read_committed`` readers, offsets included, or none of
it. A crash before 6 leaves the transaction open until the next producer with the same
transactional id starts: its start fences the old one and aborts the transaction.

A failure inside 1-6 raises :class:`TransactionAborted` after replacing the producer by a new one
with the same transactional id (after a batch the broker refused, the old one's sequence numbers
no longer match the broker's, and every later send would fail): the new one's start aborts what
the old one left open. The caller then rebuilds its state from the changelog and rewinds its
input to the committed offsets, as after a restart. When the producer was fenced (another
process runs with its transactional id), or the new one cannot start within
``REPLACE_TIMEOUT_S`` (a broker away for longer: it is retried until then, so that a broker
restart does not stop the stage), :class:`BusUnavailable` is raised instead: two processes must
not take turns fencing each other.
"""

import asyncio
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import InvalidProducerEpoch, KafkaError, ProducerFenced

from voicepulse.errors import BusError, BusUnavailable, TransactionAborted
from voicepulse.lifecycle import Lifecycle
from voicepulse.types import Record, TopicPartition

__all__ = ["Transaction", "TransactionalProducer"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S: Final = 10.0
REPLACE_TIMEOUT_S: Final = 120.0
_REPLACE_RETRY_S: Final = (0.5, 1.0, 2.0, 5.0)


@dataclass(slots=True)
class Transaction:
    """What one transaction writes: outputs, changelog entries and the input offsets consumed.

    Topic names are the plain ones of :mod:`voicepulse.topics`; the producer adds its namespace.
    """

    outputs: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    """(topic, key, value), sent in this order."""
    changelog: dict[int, list[tuple[bytes, bytes | None]]] = field(default_factory=dict)
    """Per changelog partition, (key, value) entries in order; a None value is a tombstone."""
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    """Per input partition, the offset of the next record to read."""

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.outputs.append((topic, key, value))

    def log(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Add a changelog entry for the state of ``partition``."""
        self.changelog.setdefault(partition, []).append((key, value))

    def consumed(self, records: Iterable[Record]) -> None:
        """Commit the input offsets after ``records`` (given in offset order per partition)."""
        offsets = self.offsets
        for record in records:
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1

    def __bool__(self) -> bool:
        return bool(self.outputs or self.changelog or self.offsets)


class TransactionalProducer(Lifecycle):
    """Commits :class:`Transaction` s on Kafka (see the commit protocol above).

    ``name`` says who is producing, in errors and logs ("the processor was fenced ...").
    """

    def __init__(
        self,
        bootstrap_servers: str,
        transactional_id: str,
        *,
        group: str,
        changelog: str | None = None,
        namespace: str = "",
        name: str = "producer",
        linger_ms: int = 5,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self.transactional_id = f"{namespace}{transactional_id}"
        self._group = f"{namespace}{group}"
        self._changelog = None if changelog is None else f"{namespace}{changelog}"
        self._ns = namespace
        self._name = name
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self.replace_timeout_s = REPLACE_TIMEOUT_S

    async def start(self) -> None:
        """Start the producer: this fences and aborts a predecessor's open transaction."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=self._linger_ms,
        )
        self._producer = producer
        try:
            await producer.start()
        except KafkaError as exc:
            await self._discard()
            raise BusUnavailable(f"the {self._name} could not reach Kafka: {exc}") from exc

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def commit(self, tx: Transaction) -> None:
        """Write ``tx`` in one transaction; raises :class:`TransactionAborted` (rolled back,
        producer replaced: restore and redo) or :class:`BusUnavailable` (fenced, or Kafka gone)."""
        producer = self._producer
        if producer is None:
            raise BusError(f"the {self._name}'s producer is not started")
        if tx.changelog and self._changelog is None:
            raise BusError(f"the {self._name} has no changelog topic")
        try:
            await producer.begin_transaction()
            await asyncio.gather(*[await f for f in self._sends(producer, tx)])
            if tx.offsets:
                await producer.send_offsets_to_transaction(self._native(tx.offsets), self._group)
            await producer.commit_transaction()
        except (ProducerFenced, InvalidProducerEpoch) as exc:
            raise BusUnavailable(
                f"the {self._name} was fenced: another one runs as {self.transactional_id}"
            ) from exc
        except KafkaError as exc:
            logger.warning("%s: transaction failed (%s): replacing the producer", self._name, exc)
            await self._discard()
            await self._restart()
            raise TransactionAborted(f"the {self._name}'s transaction failed: {exc}") from exc

    async def _restart(self) -> None:
        """Start a new producer, retrying while Kafka does not answer, for at most
        ``REPLACE_TIMEOUT_S``; then :class:`BusUnavailable`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.replace_timeout_s
        for attempt in itertools.count():
            try:
                await self.start()
                return
            except BusUnavailable as exc:
                delay = _REPLACE_RETRY_S[min(attempt, len(_REPLACE_RETRY_S) - 1)]
                if loop.time() + delay > deadline:
                    raise
                logger.warning("%s: %s; trying again in %.1f s", self._name, exc, delay)
                await asyncio.sleep(delay)

    def _sends(self, producer: AIOKafkaProducer, tx: Transaction) -> Iterable[Any]:
        """The sends of ``tx`` (coroutines, each resolving to its delivery future), in order."""
        ns = self._ns
        for topic, key, value in tx.outputs:
            yield producer.send(f"{ns}{topic}", value, key=key)
        for partition, entries in tx.changelog.items():
            for key, entry in entries:
                yield producer.send(self._changelog, entry, key=key, partition=partition)

    def _native(self, offsets: dict[TopicPartition, int]) -> dict[KafkaTopicPartition, int]:
        return {
            KafkaTopicPartition(f"{self._ns}{tp.topic}", tp.partition): offset
            for tp, offset in offsets.items()
        }

    async def _discard(self) -> None:
        """Close the failed producer, bounded: one whose batches cannot drain is dropped as it
        is. Its open transaction is left to the next producer's start, which aborts it."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.stop(), _CLOSE_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            logger.info("%s: dropping the failed producer unclosed: %r", self._name, exc)
