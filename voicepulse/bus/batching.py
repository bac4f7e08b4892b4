"""Grouped publishing on Kafka: concurrent records go out together, one future per batch.

aiokafka's ``send()`` costs a future, a metadata lookup, a partitioner call and an accumulator
append per record, about as much as a whole bare HTTP handler. :class:`ProduceBatcher` instead
queues each record with one waiter and lets one flusher task cycle, like the spool's grouped
fsync:

1. take every record queued so far (those whose waiter gave up are dropped);
2. group them by topic and partition (the producer's own partitioner, memoised per key), in
   arrival order, into record batches (``create_batch``), and submit each (``send_batch``);
3. go back to 1 with what arrived meanwhile; when a batch is acknowledged by the broker
   (acks=all, idempotent producer), wake its waiters with ``None``; when it fails, or is not
   acknowledged within ``timeout_s``, with :class:`BusUnavailable`.

The producer keeps one request in flight per broker and at most one batch per partition
waiting behind it (``send_batch`` waits until the partition's last batch is sent): what
arrives while a request is in flight is grouped into the next one, which leaves as soon as the
broker answers, without waiting for this task.

Guarantees:

- A waiter is woken with ``None`` only after the broker acknowledged its record.
- Records with the same key keep their submission order: they go to one partition, in arrival
  order, batch after batch, and the idempotent producer keeps that order through its retries
  (it never expires a batch; ``timeout_s`` only stops the waiting).
- A record whose batch failed or timed out may still reach the topic later (the producer keeps
  retrying it): a duplicate for whoever sends it again, never a loss.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from voicepulse.errors import BusError, BusUnavailable

__all__ = ["ProduceBatcher"]

logger = logging.getLogger(__name__)

_Item = tuple[str, bytes, bytes, "asyncio.Future[None]"]
_MAX_MEMO: Final = 65_536


class ProduceBatcher:
    """Publishes queued records in grouped batches; see the module docstring."""

    def __init__(
        self, producer: AIOKafkaProducer, *, timeout_s: float, max_record_bytes: int
    ) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._max_record_bytes = max_record_bytes
        self._pending: list[_Item] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[tuple[str, bytes, int], int] = {}

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="kafka-batcher")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (bounded by ``timeout_s``), then stop; harmless twice.

        Waiters still queued after that are woken with :class:`BusUnavailable`.
        """
        flusher, self._flusher = self._flusher, None
        if flusher is None:
            return
        self._closing = True
        self._wake.set()
        await asyncio.wait([flusher], timeout=timeout_s)
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        pending, self._pending = self._pending, []
        _fail(pending, BusUnavailable("the Kafka bus stopped before sending the record"))

    def submit(self, topic: str, key: bytes, value: bytes) -> "asyncio.Future[None]":
        """Queue one record; the future resolves once the broker acknowledged it.

        Cancelling the future (a waiter that gives up) drops the record if it was not sent
        yet. Records queued in a given order are sent in that order.
        """
        if self._flusher is None:
            raise BusError("the Kafka bus is not started")
        if len(value) + len(key) > self._max_record_bytes:
            raise BusError(f"a record of {len(value)} bytes is over the producer's limit")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((topic, key, value, future))
        self._wake.set()
        return future

    async def _flush_forever(self) -> None:
        while not self._closing or self._pending:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                items, self._pending = self._pending, []
                await self._submit([item for item in items if not item[3].done()])

    async def _submit(self, items: Sequence[_Item]) -> None:
        try:
            for (topic, partition), group in (await self._group(items)).items():
                for builder, members in self._batches(group):
                    ack = await self._producer.send_batch(builder, topic, partition=partition)
                    self._watch(ack, members)
        except KafkaError as exc:
            # Batches already submitted may still land: a duplicate, never a loss.
            error = BusUnavailable(f"Kafka refused a batch: {exc}")
            error.__cause__ = exc
            _fail(items, error)

    def _watch(self, ack: "asyncio.Future[Any]", members: list[_Item]) -> None:
        """Wake ``members`` when ``ack`` resolves, or with an error after ``timeout_s``."""
        expired = BusUnavailable(f"Kafka did not acknowledge within {self._timeout_s} s")
        timer = asyncio.get_running_loop().call_later(self._timeout_s, _fail, members, expired)

        def settle(done: "asyncio.Future[Any]") -> None:
            timer.cancel()
            _settle(done, members)

        ack.add_done_callback(settle)

    async def _group(self, items: Sequence[_Item]) -> dict[tuple[str, int], list[_Item]]:
        groups: dict[tuple[str, int], list[_Item]] = {}
        counts: dict[str, list[int]] = {}
        for item in items:
            topic = item[0]
            partitions = counts.get(topic)
            if partitions is None:
                partitions = counts[topic] = sorted(await self._producer.partitions_for(topic))
            partition = self._partition(topic, item[1], partitions)
            groups.setdefault((topic, partition), []).append(item)
        return groups

    def _partition(self, topic: str, key: bytes, partitions: list[int]) -> int:
        memo = (topic, key, len(partitions))
        found = self._partitions.get(memo)
        if found is None:
            if len(self._partitions) >= _MAX_MEMO:
                self._partitions.clear()
            found = self._partitions[memo] = self._partitioner(key, partitions, partitions)
        return found

    def _batches(self, group: list[_Item]) -> list[tuple[Any, list[_Item]]]:
        """``group`` cut into closed record batches of at most the producer's
        ``max_batch_size`` (a batch's first record is always taken, whatever its size)."""
        batches: list[tuple[Any, list[_Item]]] = []
        builder = self._producer.create_batch()
        members: list[_Item] = []
        for item in group:
            if builder.append(timestamp=None, key=item[1], value=item[2]) is None:
                batches.append((builder, members))
                builder, members = self._producer.create_batch(), []
                builder.append(timestamp=None, key=item[1], value=item[2])
            members.append(item)
        builder.close()
        batches.append((builder, members))
        return batches


def _settle(ack: "asyncio.Future[Any]", members: list[_Item]) -> None:
    if ack.cancelled() or ack.exception() is not None:
        cause = None if ack.cancelled() else ack.exception()
        error = BusUnavailable(f"Kafka refused a batch: {cause!r}")
        error.__cause__ = cause
        _fail(members, error)
    else:
        for item in members:
            if not item[3].done():
                item[3].set_result(None)


def _fail(items: Sequence[_Item], error: BusError) -> None:
    for item in items:
        if not item[3].done():
            item[3].set_exception(error)
