"""The in-process bus: the embedded default, for one process and no Kafka.

One partition per topic, kept in memory; consumer groups keep committed offsets, so a consumer
started after another member of its group stopped resumes where that one committed. Nothing
survives the process: for durability across restarts, run on Kafka.
"""

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence

from voicepulse.errors import BusError
from voicepulse.lifecycle import Lifecycle
from voicepulse.types import Record, TopicPartition

__all__ = ["InProcessBus"]


class InProcessBus(Lifecycle):
    """Implements :class:`voicepulse.types.Bus` in memory."""

    def __init__(self) -> None:
        self._logs: defaultdict[str, list[Record]] = defaultdict(list)
        self._committed: dict[tuple[str, TopicPartition], int] = {}
        self._members: set[str] = set()
        self._appended = asyncio.Condition()
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if not self._running:
            raise BusError("the in-process bus is not running")
        log = self._logs[topic]
        log.append(Record(topic, 0, len(log), key, value))
        async with self._appended:
            self._appended.notify_all()

    def consumer(self, topics: Sequence[str], group: str) -> "InProcessConsumer":
        return InProcessConsumer(self, tuple(topics), group)

    def records(self, topic: str) -> Sequence[Record]:
        """Everything published to ``topic`` so far (for tests and the simulator's checks)."""
        return tuple(self._logs[topic])


class InProcessConsumer(Lifecycle):
    """One member of a consumer group on the in-process bus (one member per group at a time)."""

    def __init__(self, bus: InProcessBus, topics: tuple[str, ...], group: str) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        self._positions: dict[str, int] = {}

    async def start(self) -> None:
        if self._group in self._bus._members:
            raise BusError(f"group {self._group!r} already has a member on the in-process bus")
        self._bus._members.add(self._group)
        for topic in self._topics:
            committed = self._bus._committed.get((self._group, TopicPartition(topic, 0)), 0)
            self._positions[topic] = committed

    async def stop(self) -> None:
        self._bus._members.discard(self._group)

    async def poll(self, timeout_s: float, max_records: int) -> Sequence[Record]:
        batch = self._take(max_records)
        if batch:
            return batch
        try:
            async with self._bus._appended:
                await asyncio.wait_for(
                    self._bus._appended.wait_for(self._has_new), timeout=timeout_s
                )
        except TimeoutError:
            return ()
        return self._take(max_records)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            self._bus._committed[(self._group, tp)] = offset

    async def lag(self) -> dict[TopicPartition, int]:
        logs = self._bus._logs
        return {TopicPartition(t, 0): len(logs[t]) - p for t, p in self._positions.items()}

    def _has_new(self) -> bool:
        return any(len(self._bus._logs[t]) > self._positions[t] for t in self._topics)

    def _take(self, max_records: int) -> list[Record]:
        batch: list[Record] = []
        for topic in self._topics:
            log = self._bus._logs[topic]
            start = self._positions[topic]
            chunk = log[start : start + max_records - len(batch)]
            self._positions[topic] = start + len(chunk)
            batch.extend(chunk)
            if len(batch) >= max_records:
                break
        return batch
