"""A consumer group whose per-partition state lives in a changelog, every turn one transaction.

:class:`StatefulStage` runs a :class:`StateHandler` on Kafka so that a stage killed at any
instant and restarted converges to the output of an uninterrupted run. Its input topics are
co-partitioned (keyed alike, same partition count); the handler keeps one piece of state per
input partition number, and the state of partition *n* lives on partition *n* of a compacted
changelog topic. The commit protocol, per turn of the loop:

1. Poll a batch from the input topics (``read_committed``, static group membership) and keep
   the records of the partitions whose state is loaded.
2. Holding the state lock (no rebalance loads or drops state mid-turn), hand them to
   :meth:`StateHandler.turn` (also on an idle poll, for work driven by time), which updates its
   state and fills a :class:`~voicepulse.bus.transactional.Transaction`: outputs, changelog
   entries for the partitions whose state changed, and the offsets of the records it applied.
3. Commit that transaction (:class:`~voicepulse.bus.transactional.TransactionalProducer`:
   outputs, changelog entries and input offsets all become visible together, or none do).

A crash before 3 completes leaves nothing visible: the restarted stage (same instance id, so
the same transactional id, whose start aborts the open transaction) restores the state and
input offsets of the last committed transaction and redoes the batch, with the same result,
provided the handler is deterministic. A failed transaction leaves the in-memory state ahead
of Kafka: every loaded partition's state is dropped and restored from the changelog and the
consumer rewound to the committed offsets, as after a restart; a fenced producer (another
process runs with this instance id) or a failed recovery ends the stage with
:class:`~voicepulse.errors.BusUnavailable`, and a restart recovers.

Rebalancing: on assignment the state of each new partition is restored by reading its
changelog partition to its end (:func:`~voicepulse.bus.changelog.read_changelog`); on
revocation it is dropped (its new owner restores it). Each process of the group needs its own
instance id.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from voicepulse.bus.admin import ensure_topics
from voicepulse.bus.changelog import Entries, read_changelog
from voicepulse.bus.kafka import consumer_lag
from voicepulse.bus.transactional import Transaction, TransactionalProducer
from voicepulse.errors import BusUnavailable, TransactionAborted
from voicepulse.lifecycle import Lifecycle
from voicepulse.metrics import StageCounters
from voicepulse.stage import LAG_INTERVAL_S, LoopStage, Ticker
from voicepulse.types import Record, TopicPartition

__all__ = ["HandlerStage", "Poll", "StateHandler", "StatefulStage", "read_to_end"]

logger = logging.getLogger(__name__)

_END_OFFSETS_TIMEOUT_S: Final = 5.0


class StateHandler(Protocol):
    """What a :class:`StatefulStage` runs: per-partition state, turns of records into
    transactions. The stage calls these one at a time, never concurrently."""

    async def restore(self, partition: int, entries: Entries) -> None:
        """Rebuild the state of ``partition`` from ``entries`` (read them to the end),
        replacing whatever the handler held for it."""
        ...

    def revoke(self, partitions: set[int]) -> None:
        """Drop the state (and anything buffered) of ``partitions``."""
        ...

    async def turn(self, poll: "Poll", tx: Transaction) -> bool:
        """Apply ``poll.records`` (maybe none: an idle poll) and put into ``tx`` the outputs,
        the changelog entries of the partitions whose state changed, and the offsets of the
        records applied (:meth:`Transaction.consumed`). True when no record handed over so
        far is held back (the stage then counts as idle when the poll was empty)."""
        ...


@dataclass(slots=True)
class Poll:
    """One poll's records (plain topic names), and what a handler may ask of the input."""

    records: list[Record]
    timestamps: list[int]
    """Each record's Kafka timestamp (ms), in the same order."""
    stage: "StatefulStage" = field(repr=False)

    def assignment(self) -> set[TopicPartition]:
        return self.stage.assignment()

    async def read_to_end(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """See :func:`read_to_end`."""
        return await self.stage.read_to_end(partitions)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self.stage.pause(partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self.stage.resume(partitions)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: "StatefulStage") -> None:
        self._stage = stage

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._stage._revoke({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._stage._assign({tp.partition for tp in assigned})


class StatefulStage(LoopStage):
    """Runs a :class:`StateHandler` over a consumer group on Kafka (see the commit protocol).

    Idle (for :meth:`drain`): a poll found nothing new and the handler holds nothing back.

    ``group`` is the consumer group; ``<group>-<instance_id>`` is both the static member id and
    the transactional id. ``outputs`` are the topics the handler sends to (created if
    missing, as are the inputs and the compacted ``changelog``). Topic and group names are the
    plain ones; ``namespace`` prefixes them on the broker.
    """

    def __init__(
        self,
        name: str,
        bootstrap_servers: str,
        handler: StateHandler,
        *,
        topics: Sequence[str],
        outputs: Sequence[str],
        changelog: str,
        group: str,
        instance_id: str = "0",
        namespace: str = "",
        partitions: int = 6,
        replication_factor: int = 1,
        max_records: int = 5000,
        poll_timeout_s: float = 0.2,
        description: str | None = None,
        metrics: StageCounters | None = None,
    ) -> None:
        super().__init__(name)
        self._bootstrap = bootstrap_servers
        self._handler = handler
        self._topics = tuple(topics)
        self._outputs = tuple(outputs)
        self._changelog = changelog
        self._ns = namespace
        self._group = group
        self._member = f"{namespace}{group}-{instance_id}"
        self._partitions = partitions
        self._replication = replication_factor
        self._max_records = max_records
        self._poll_ms = int(poll_timeout_s * 1000)
        self._logical = {f"{namespace}{t}": t for t in self._topics}
        self.producer = TransactionalProducer(
            bootstrap_servers,
            f"{group}-{instance_id}",
            group=group,
            changelog=changelog,
            namespace=namespace,
            name=description or name,
        )
        self._lock = asyncio.Lock()
        self._owned: set[int] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: AIOKafkaConsumer | None = None  # asks for end offsets, never fetches
        self.batches = 0
        """Transactions committed since start."""
        self.recoveries = 0
        """Failed transactions recovered from since start."""
        self._metrics = metrics
        self._lag_at = Ticker()

    @property
    def owned(self) -> frozenset[int]:
        """The input partitions whose state is loaded."""
        return frozenset(self._owned)

    async def _open(self) -> None:
        try:
            await ensure_topics(
                self._bootstrap,
                [f"{self._ns}{t}" for t in (*self._topics, *self._outputs)],
                compacted=[f"{self._ns}{self._changelog}"],
                partitions=self._partitions,
                replication_factor=self._replication,
            )
            await self.producer.start()
            await self._start_consumers()
        except BaseException:
            await self._close()
            raise

    async def _start_consumers(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=f"{self._ns}{self._group}",
            group_instance_id=self._member,  # static member: a restart takes over at once
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self._consumer.subscribe(list(self._logical), listener=_Rebalance(self))
        self._ends = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            await self._consumer.start()
            await self._ends.start()
        except KafkaError as exc:
            raise BusUnavailable(f"the {self.name} stage could not reach Kafka: {exc}") from exc

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        ends, self._ends = self._ends, None
        if consumer is not None:
            await consumer.stop()
        if ends is not None:
            await ends.stop()
        await self.producer.stop()

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stopping.is_set():
            try:
                batches = await consumer.getmany(
                    timeout_ms=self._poll_ms, max_records=self._max_records
                )
            except KafkaError as exc:
                raise BusUnavailable(f"the {self.name} stage could not poll: {exc}") from exc
            async with self._lock:
                done = await self._turn(batches)
            if self._metrics is not None and self._lag_at.elapsed >= LAG_INTERVAL_S:
                self._lag_at.reset()
                self._metrics.lag = await consumer_lag(consumer, self._logical)
            if not batches and done:
                self._idle.set()

    async def _turn(self, batches: dict[Any, list[Any]]) -> bool:
        owned, logical = self._owned, self._logical
        records: list[Record] = []
        timestamps: list[int] = []
        for tp, messages in batches.items():
            if tp.partition not in owned:
                continue
            topic, partition = logical[tp.topic], tp.partition
            for m in messages:
                records.append(Record(topic, partition, m.offset, m.key, m.value))
                timestamps.append(m.timestamp)
        metrics = self._metrics
        if metrics is not None and records:
            metrics.batch(len(records))
        tx = Transaction()
        done = await self._handler.turn(Poll(records, timestamps, self), tx)
        if tx:
            started = time.perf_counter()
            try:
                await self.producer.commit(tx)
                self.batches += 1
                if metrics is not None:
                    metrics.committed(time.perf_counter() - started)
            except TransactionAborted as exc:
                await self._recover(exc)
        return done

    async def _recover(self, error: TransactionAborted) -> None:
        """Restore every loaded partition's state and rewind the consumer, as a restart would."""
        consumer = self._consumer
        assert consumer is not None
        logger.warning("%s: %s; restoring and rewinding", self.name, error)
        self.recoveries += 1
        if self._metrics is not None:
            self._metrics.recovered()
        owned = set(self._owned)
        self._handler.revoke(owned)
        try:
            for partition in sorted(owned):
                await self._restore(partition)
            for tp in consumer.assignment():
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
        except KafkaError as exc:
            raise BusUnavailable(f"the {self.name} stage could not recover: {exc}") from exc

    # -- rebalancing -------------------------------------------------------------------------

    async def _revoke(self, partitions: set[int]) -> None:
        async with self._lock:
            self._handler.revoke(partitions & self._owned)
            self._owned -= partitions

    async def _assign(self, partitions: set[int]) -> None:
        async with self._lock:
            for partition in sorted(partitions - self._owned):
                await self._restore(partition)

    async def _restore(self, partition: int) -> None:
        self._owned.discard(partition)
        topic = f"{self._ns}{self._changelog}"
        async with contextlib.aclosing(
            read_changelog(self._bootstrap, topic, partition)
        ) as entries:
            await self._handler.restore(partition, entries)
        self._owned.add(partition)

    # -- what a handler may ask of the input ---------------------------------------------------

    def assignment(self) -> set[TopicPartition]:
        """The input partitions assigned to this member (plain topic names)."""
        consumer = self._consumer
        assert consumer is not None
        return {
            TopicPartition(self._logical[tp.topic], tp.partition) for tp in consumer.assignment()
        }

    async def read_to_end(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Those of ``partitions`` read up to their end now (see :func:`read_to_end`)."""
        consumer, ends = self._consumer, self._ends
        assert consumer is not None
        assert ends is not None
        native = {self._native(tp): tp for tp in partitions}
        done = await read_to_end(consumer, native, ends)
        return {native[tp] for tp in done}

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop fetching ``partitions`` until :meth:`resume`."""
        assert self._consumer is not None
        native = [self._native(tp) for tp in partitions]
        if native:
            self._consumer.pause(*native)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        native = [tp for tp in map(self._native, partitions) if tp in assigned]
        if native:
            self._consumer.resume(*native)

    def _native(self, tp: TopicPartition) -> KafkaTopicPartition:
        return KafkaTopicPartition(f"{self._ns}{tp.topic}", tp.partition)


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: Iterable[KafkaTopicPartition],
    ends: AIOKafkaConsumer,
    *,
    timeout_s: float = _END_OFFSETS_TIMEOUT_S,
) -> set[KafkaTopicPartition]:
    """The topic partitions among ``partitions`` that ``consumer`` has read up to their end
    now (the last stable offset under ``read_committed``): nothing written to them before this
    call is still to come.

    The end the last fetch reported is not enough: aiokafka leaves a topic partition out of its
    fetches while records it fetched are still being handed over, so when the last of them is
    handed over the position equals that stale end, although records were written since. So a
    partition whose position has reached its reported end is checked against its end asked
    for now, by ``ends``, a client of its own (on ``consumer``'s connection the request would
    wait behind the fetch in flight, up to its ``fetch_max_wait_ms``): one ListOffsets request
    for all of them. When that fails or takes longer than ``timeout_s``, they count as not
    read to their end.
    """
    candidates: dict[KafkaTopicPartition, int] = {}
    for tp in partitions:
        end = consumer.last_stable_offset(tp)
        if end is None:
            end = consumer.highwater(tp)
        position = await consumer.position(tp)
        if end is not None and position >= end:
            candidates[tp] = position
    if not candidates:
        return set()
    try:
        now = await asyncio.wait_for(ends.end_offsets(list(candidates)), timeout_s)
    except (KafkaError, TimeoutError) as exc:
        logger.info("input end offsets unavailable (%r): records stay buffered", exc)
        return set()
    return {tp for tp, position in candidates.items() if position >= now.get(tp, position + 1)}


class HandlerStage(Lifecycle):
    """A :class:`StateHandler` that is also the pipeline's stage: it owns the
    :class:`StatefulStage` that runs it (``self._stage``, made in the subclass's ``__init__``)
    and answers for it (the processor and the alert stage on Kafka)."""

    _stage: StatefulStage

    @property
    def task(self) -> "asyncio.Task[None] | None":
        return self._stage.task

    @property
    def batches(self) -> int:
        """Transactions committed since start."""
        return self._stage.batches

    @property
    def recoveries(self) -> int:
        """Failed transactions recovered from since start."""
        return self._stage.recoveries

    async def start(self) -> None:
        await self._stage.start()

    async def drain(self, timeout_s: float) -> None:
        await self._stage.drain(timeout_s)

    async def stop(self) -> None:
        await self._stage.stop()
