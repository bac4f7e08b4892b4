"""The processor on Kafka: state checkpointed in a changelog, output and offsets in one transaction.

A processor killed with SIGKILL at any instant and restarted converges to exactly the output of
an uninterrupted run. The commit protocol, per turn of the loop:

1. Poll a batch from the input topics (``read_committed``), holding the shard lock so that no
   rebalance drops or loads a shard mid-turn, and take from it, per partition, the records
   that come next in write-time order across the four topics (:mod:`processors.align`: the
   shard sees its topics interleaved as they were written, however the fetches fell). A topic
   partition with nothing buffered counts as read to its end only against its end offset asked
   for in that turn, never the one its last fetch reported (:func:`read_to_end`).
2. Let stream time reach the wall clock minus the lag (idle windows close; calls time out),
   then apply the records to the shards (one per partition number; every input topic is keyed
   by subaccount SID with the same partition count). A record below the offset its shard
   already reflects is skipped: its effect is in the restored state. (The clock comes first so
   that a call read now is heard of now, whatever its own time: see :mod:`processors.engine`.)
3. Collect what changed: new call-fact versions, changed rows, changed state entries.
4. Begin a Kafka transaction (transactional id ``voicepulse-process-<instance id>``).
5. Send, inside it: dead letters, new call-fact versions (``voicepulse.calls``), changed health
   rows (``voicepulse.health``), and for each changed shard its changed state entries to the
   compacted changelog topic, on the changelog partition equal to the shard's, ending with the
   shard's meta entry (stream time and the input offsets it reflects).
6. Add the consumed offsets to the transaction (``send_offsets_to_transaction``) and commit it.

A crash before 6 completes leaves the transaction open until the next producer with the same
transactional id fences and aborts it: none of its outputs, state entries or offsets become
visible to ``read_committed`` readers, and the restarted processor redoes the batch from the
state and offsets of the last committed transaction, with the same result. A failure inside 4-6
leaves the in-memory state ahead of what was committed: the producer is replaced by a new one
with the same transactional id (whose start aborts the transaction), the shards are restored
from the changelog and the consumer rewound to the committed offsets, as after a restart; if
even that fails, or the producer was fenced by another process with the same instance id, the
stage stops and a restart recovers.

What is deterministic. With the wall clock off (``wall_clock_lag_s=None``) the output is a
function of the input logs alone: each shard applies its partition's records in write-time order
across the four topics (:mod:`processors.align`), and stream time follows the event times in
that order, so which events are late, every count, every fact and its versions are the same
however the records were fetched, however often the processor was killed, and with one process
or several. Not so:

- With the wall clock on (the default, so that idle windows close on time), stream time also
  follows the clock: a processor reading an event more than lag + grace after its window ended
  (behind after an outage, or a backlog) counts it as late, where a caught-up one would not.
- Records of different topics with equal Kafka timestamps are applied by topic, then offset;
  a live reader may have taken them the other way round. And a record written with a timestamp
  earlier than one already applied (a producer's clock behind, with CreateTime) is applied in
  timestamp order on a replay but was applied on arrival live. With ``LogAppendTime`` on the
  input topics, timestamps follow the write order of the partition.
- A killed process whose instance id never starts again holds its open transaction until the
  broker's transaction timeout (60 s): until then ``read_committed`` readers of its output
  partitions (the sink) wait. Restart it with the same instance id to fence it at once.

On assignment the processor restores each assigned shard by reading its changelog partition to
its end (``read_committed``); on revocation it drops the shard. Two processes in one consumer
group each own their partitions' shards, so together they give what one gives; each needs its
own instance id.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidProducerEpoch, KafkaError, ProducerFenced

from processors.align import Aligner
from processors.engine import EngineConfig, Shard
from processors.processor import Output, Processor
from processors.stage import INPUT_TOPICS, wall_clock
from processors.state import restore_entry
from voicepulse import topics
from voicepulse.bus.kafka import create_topics
from voicepulse.deadletter import dead_letter_envelope
from voicepulse.errors import BusUnavailable
from voicepulse.types import Record

__all__ = ["CHANGELOG", "KafkaProcessorStage", "read_to_end"]

logger = logging.getLogger(__name__)

CHANGELOG: Final = "voicepulse.processor-changelog"
_CLOSE_TIMEOUT_S: Final = 10.0
_END_OFFSETS_TIMEOUT_S: Final = 5.0


def _caught_up(ends: dict[tuple[str, int], bool], topic: str, partition: int) -> bool:
    return ends.get((topic, partition), True)  # not ours: nothing to wait for


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: Iterable[TopicPartition],
    ends: AIOKafkaConsumer,
    *,
    timeout_s: float = _END_OFFSETS_TIMEOUT_S,
) -> set[TopicPartition]:
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
    candidates: dict[TopicPartition, int] = {}
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


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: "KafkaProcessorStage") -> None:
        self._stage = stage

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._stage.revoke({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._stage.assign({tp.partition for tp in assigned})


class KafkaProcessorStage:
    """Call assembly and health windows on Kafka, crash-safe (see the commit protocol)."""

    name = "process"

    def __init__(
        self,
        bootstrap_servers: str,
        config: EngineConfig,
        *,
        namespace: str = "",
        group: str = "voicepulse-process",
        instance_id: str = "0",
        partitions: int = 6,
        replication_factor: int = 1,
        wall_clock_lag_s: float | None = 10.0,
        max_records: int = 5000,
        poll_timeout_s: float = 0.2,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._ns = namespace
        self._group = f"{namespace}{group}"
        self._transactional_id = f"{namespace}voicepulse-process-{instance_id}"
        self._instance = f"{namespace}voicepulse-process-{instance_id}"
        self._partitions = partitions
        self._replication = replication_factor
        self._lag = wall_clock_lag_s
        self._max_records = max_records
        self._poll_ms = int(poll_timeout_s * 1000)
        self.processor = Processor(config, changelog=True)
        self._lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: AIOKafkaConsumer | None = None  # asks for input end offsets, never fetches
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._aligner = Aligner(INPUT_TOPICS)
        self._paused: set[TopicPartition] = set()
        self.batches = 0
        self.recoveries = 0

    def _physical(self, name: str) -> str:
        return f"{self._ns}{name}"

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def start(self) -> None:
        if self._task is not None:
            return
        try:
            await self._ensure_topics()
            await self._start_producer()
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=self._group,
                group_instance_id=self._instance,  # static member: a restart takes over at once
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
            )
            self._consumer.subscribe(
                [self._physical(t) for t in INPUT_TOPICS], listener=_Rebalance(self)
            )
            await self._consumer.start()
            self._ends = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
            await self._ends.start()
        except KafkaError as exc:
            await self._close()
            raise BusUnavailable(f"the processor could not reach Kafka: {exc}") from exc
        self._task = asyncio.create_task(self._run(), name="stage:process")

    async def _start_producer(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            transactional_id=self._transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
        )
        self._producer = producer
        await producer.start()  # fences and aborts a predecessor's open transaction

    async def drain(self, timeout_s: float) -> None:
        self._idle.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await task
        finally:
            await self._close()

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        ends, self._ends = self._ends, None
        producer, self._producer = self._producer, None
        if consumer is not None:
            await consumer.stop()
        if ends is not None:
            await ends.stop()
        if producer is not None:
            await producer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(
                timeout_ms=self._poll_ms, max_records=self._max_records
            )
            async with self._lock:
                owned = self.processor.shards
                self._aligner.add(
                    (
                        m.timestamp,
                        Record(tp.topic[len(self._ns) :], tp.partition, m.offset, m.key, m.value),
                    )
                    for tp, messages in batches.items()
                    if tp.partition in owned
                    for m in messages
                )
                ends = await self._caught_up()
                records = self._aligner.release(partial(_caught_up, ends))
                self._pause_full()
                await self._turn(records)
            if not batches and not self._aligner.buffered():
                self._idle.set()

    async def _caught_up(self) -> dict[tuple[str, int], bool]:
        """Per assigned input partition: read up to its end?"""
        consumer = self._consumer
        assert consumer is not None
        assigned = consumer.assignment()
        if not self._aligner.buffered():
            return {}  # nothing to release
        assert self._ends is not None
        done = await read_to_end(consumer, assigned, self._ends)
        return {(tp.topic[len(self._ns) :], tp.partition): tp in done for tp in assigned}

    def _pause_full(self) -> None:
        """Stop fetching topic partitions whose buffers are full until they drain."""
        consumer = self._consumer
        assert consumer is not None
        full = {TopicPartition(self._physical(t), p) for t, p in self._aligner.full()}
        assigned = consumer.assignment()
        if full - self._paused:
            consumer.pause(*(full - self._paused))
        if self._paused - full:
            consumer.resume(*((self._paused - full) & assigned))
        self._paused = full & assigned

    async def _turn(self, records: Sequence[Record]) -> None:
        owned = {p for p in self.processor.shards}
        records = [r for r in records if r.partition in owned]
        out = Output()
        now = wall_clock(self._lag)
        if now is not None:
            self.processor.tick(now)
        self.processor.feed(records, out)
        self.processor.drain(out)
        offsets = {
            TopicPartition(self._physical(r.topic), r.partition): r.offset + 1 for r in records
        }
        if offsets or out.facts or out.rows or out.changelog or out.rejected:
            await self._commit(out, offsets)
            self.batches += 1

    async def _commit(self, out: Output, offsets: dict[TopicPartition, int]) -> None:
        producer = self._producer
        assert producer is not None
        try:
            await producer.begin_transaction()
            dead = [dead_letter_envelope(r, why, stage=self.name) for r, why in out.rejected]
            futures = [
                await self._send(topics.DEAD_LETTER, envelope.key, envelope.to_json())
                for envelope in dead
            ]
            for envelope in (*out.facts, *out.rows):
                target = topics.CALLS if envelope.type == "call-fact" else topics.HEALTH
                futures.append(await self._send(target, envelope.key, envelope.to_json()))
            for partition, entries in out.changelog.items():
                for key, value in entries:
                    futures.append(
                        await producer.send(
                            self._physical(CHANGELOG), value, key=key.encode(), partition=partition
                        )
                    )
            await asyncio.gather(*futures)
            if offsets:
                await producer.send_offsets_to_transaction(offsets, self._group)
            await producer.commit_transaction()
        except KafkaError as exc:
            await self._recover(exc)

    async def _recover(self, error: KafkaError) -> None:
        """After a failed transaction: end it, rebuild every owned shard from the changelog and
        rewind the consumer to the committed offsets, as a restart would.

        The producer is replaced by a new one with the same transactional id: after a batch
        the broker refused, the old one's sequence numbers no longer match the broker's and
        every later send would fail (out of order sequence). Starting the new one aborts
        whatever the old one left open. A fenced producer (another process runs with this
        instance id) stops the stage instead: two processes must not take turns fencing.
        """
        consumer = self._consumer
        assert consumer is not None
        if isinstance(error, ProducerFenced | InvalidProducerEpoch):
            raise BusUnavailable(
                f"the processor was fenced: another one runs as {self._transactional_id}"
            ) from error
        logger.warning("processor transaction failed (%s): restoring and rewinding", error)
        self.recoveries += 1
        self._aligner.clear()
        await self._discard_producer()
        try:
            await self._start_producer()
            for partition in sorted(self.processor.shards):
                self.processor.shards[partition] = await self._restore(partition)
            for tp in consumer.assignment():
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
        except KafkaError as exc:
            raise BusUnavailable(f"the processor could not recover: {exc}") from exc

    async def _discard_producer(self) -> None:
        """Close the failed producer, bounded: one whose batches cannot drain is dropped as it
        is. Its open transaction is left to the next producer's start, which aborts it."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.stop(), _CLOSE_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            logger.info("dropping the failed producer unclosed: %r", exc)

    async def _send(self, topic: str, key: bytes, value: bytes) -> "asyncio.Future[Any]":
        assert self._producer is not None
        future: asyncio.Future[Any] = await self._producer.send(
            self._physical(topic), value, key=key
        )
        return future

    # -- rebalancing -------------------------------------------------------------------------

    async def revoke(self, partitions: set[int]) -> None:
        """Drop the shards of revoked partitions (their new owner restores them)."""
        async with self._lock:
            for partition in partitions:
                self.processor.shards.pop(partition, None)
            self._aligner.drop(partitions)

    async def assign(self, partitions: set[int]) -> None:
        """Restore the shards of newly assigned partitions from the changelog."""
        async with self._lock:
            for partition in sorted(partitions - set(self.processor.shards)):
                self.processor.shards[partition] = await self._restore(partition)

    async def _restore(self, partition: int) -> Shard:
        shard = Shard(self.processor.config)
        tp = TopicPartition(self._physical(CHANGELOG), partition)
        reader = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await reader.start()
        entries = 0
        try:
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=500, max_records=10000)
                for message in batch.get(tp, []):
                    restore_entry(shard, message.key.decode(), message.value)
                    entries += 1
        finally:
            await reader.stop()
        shard.rebuild_timers()
        logger.info(
            "restored shard %d: %d calls, %d open windows from %d changelog entries",
            partition,
            len(shard.calls),
            len(shard.windows),
            entries,
        )
        return shard

    async def _ensure_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            wanted = [*INPUT_TOPICS, topics.CALLS, topics.HEALTH, topics.DEAD_LETTER]
            new = [
                NewTopic(self._physical(t), self._partitions, self._replication)
                for t in wanted
                if self._physical(t) not in existing
            ]
            if self._physical(CHANGELOG) not in existing:
                new.append(
                    NewTopic(
                        self._physical(CHANGELOG),
                        self._partitions,
                        self._replication,
                        topic_configs={"cleanup.policy": "compact"},
                    )
                )
            if new:
                await create_topics(admin, new)
        finally:
            await admin.close()
