"""The processor on Kafka: state checkpointed in a changelog, output and offsets in one transaction.

A processor killed with SIGKILL at any instant and restarted converges to exactly the output of
an uninterrupted run. The commit protocol, per turn of the loop:

1. Poll a batch from the input topics (``read_committed``), holding the shard lock so that no
   rebalance drops or loads a shard mid-turn, and take from it, per partition, the records
   that come next in write-time order across the four topics (:mod:`processors.align`: the
   shard sees its topics interleaved as they were written, however the fetches fell). A topic
   partition with nothing buffered counts as read to its end only against its end offset asked
   for in that turn, never the one its last fetch reported
   (:func:`voicepulse.bus.stateful.read_to_end`).
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

The Kafka side (topics, the consumer group, rebalancing, the transaction of step 4-6, recovery)
is :class:`voicepulse.bus.StatefulStage`'s; this module is the processor's turn and its shards.
"""

import logging
from functools import partial
from typing import Final

from processors.align import Aligner
from processors.engine import EngineConfig, Shard
from processors.metrics import ProcessorMetrics
from processors.processor import Processor
from processors.stage import INPUT_TOPICS, messages, step
from processors.state import restore_entry
from voicepulse import topics
from voicepulse.bus.changelog import Entries
from voicepulse.bus.stateful import HandlerStage, Poll, StatefulStage
from voicepulse.bus.transactional import Transaction
from voicepulse.metrics import StageMetrics
from voicepulse.types import TopicPartition

__all__ = ["CHANGELOG", "KafkaProcessorStage"]

logger = logging.getLogger(__name__)

CHANGELOG: Final = "voicepulse.processor-changelog"
_OUTPUTS: Final = (topics.CALLS, topics.HEALTH, topics.DEAD_LETTER)


def _caught_up(ends: dict[tuple[str, int], bool], topic: str, partition: int) -> bool:
    return ends.get((topic, partition), True)  # not ours: nothing to wait for


class KafkaProcessorStage(HandlerStage):
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
        metrics: StageMetrics | None = None,
    ) -> None:
        self._lag = wall_clock_lag_s
        self.processor = Processor(config, changelog=True)
        counters = None if metrics is None else metrics.stage(self.name)
        self.metrics = ProcessorMetrics(self.processor, counters)
        if metrics is not None:
            metrics.registry.register(self.metrics)
        self._aligner = Aligner(INPUT_TOPICS)
        self._paused: set[TopicPartition] = set()
        self._stage = StatefulStage(
            self.name,
            bootstrap_servers,
            self,
            topics=INPUT_TOPICS,
            outputs=_OUTPUTS,
            changelog=CHANGELOG,
            group=group,
            instance_id=instance_id,
            namespace=namespace,
            partitions=partitions,
            replication_factor=replication_factor,
            max_records=max_records,
            poll_timeout_s=poll_timeout_s,
            description="processor",
            metrics=counters,
        )

    # -- the turn (steps 1-5) ----------------------------------------------------------------

    async def turn(self, poll: Poll, tx: Transaction) -> bool:
        """Release the polled records in write-time order, apply them, fill ``tx``."""
        self._aligner.add(zip(poll.timestamps, poll.records, strict=True))
        ends = await self._caught_up(poll)
        records = self._aligner.release(partial(_caught_up, ends))
        self._pause_full(poll)
        out = step(self.processor, records, self._lag)
        self.metrics.observe(out)
        tx.outputs.extend(messages(out, self.name))
        for partition, entries in out.changelog.items():
            tx.changelog[partition] = [(key.encode(), value) for key, value in entries]
        tx.consumed(records)
        return not self._aligner.buffered()

    async def _caught_up(self, poll: Poll) -> dict[tuple[str, int], bool]:
        """Per assigned input partition: read up to its end?"""
        if not self._aligner.buffered():
            return {}  # nothing to release
        assigned = poll.assignment()
        done = await poll.read_to_end(assigned)
        return {(tp.topic, tp.partition): tp in done for tp in assigned}

    def _pause_full(self, poll: Poll) -> None:
        """Stop fetching topic partitions whose buffers are full until they drain."""
        full = {TopicPartition(t, p) for t, p in self._aligner.full()}
        assigned = poll.assignment()
        if full - self._paused:
            poll.pause(full - self._paused)
        if self._paused - full:
            poll.resume((self._paused - full) & assigned)
        self._paused = full & assigned

    # -- shards ------------------------------------------------------------------------------

    def revoke(self, partitions: set[int]) -> None:
        """Drop the shards of revoked partitions (their new owner restores them)."""
        for partition in partitions:
            self.processor.shards.pop(partition, None)
        self._aligner.drop(partitions)

    async def restore(self, partition: int, entries: Entries) -> None:
        """Rebuild the shard of ``partition`` from its changelog entries."""
        shard = Shard(self.processor.config)
        count = 0
        async for key, value in entries:
            restore_entry(shard, key.decode(), value)
            count += 1
        shard.restored()
        self.processor.shards[partition] = shard
        logger.info(
            "restored shard %d: %d calls, %d open windows from %d changelog entries",
            partition,
            len(shard.calls),
            len(shard.windows),
            count,
        )
