"""The contracts between stages: records on the bus, the bus itself, and a stage's lifecycle.

Stages never import each other; they meet only here and in :mod:`voicepulse.envelope`.
"""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

__all__ = ["Bus", "Consumer", "Record", "Stage", "TopicPartition"]


class TopicPartition(msgspec.Struct, frozen=True, gc=False):
    topic: str
    partition: int


class Record(msgspec.Struct, frozen=True, gc=False):
    """One message read from the bus, with where it came from.

    A frozen msgspec struct rather than a frozen dataclass: one is built per message consumed,
    and a frozen dataclass's ``__init__`` (a ``object.__setattr__`` call per field) costs about
    seven times as much. It holds only strings, bytes and numbers, so it cannot be part of a
    reference cycle and stays out of the cyclic garbage collector (``gc=False``).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class Consumer(Protocol):
    """A member of a consumer group on some topics.

    Offsets are committed only by :meth:`commit`, never automatically: a stage commits once
    what it made of the records is durable downstream.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def poll(self, timeout_s: float, max_records: int) -> Sequence[Record]:
        """Records after the current position, waiting up to ``timeout_s`` for the first."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, per partition, the offset of the next record to read."""
        ...

    async def lag(self) -> dict[TopicPartition, int]:
        """Per assigned partition, the records after the current position (its end offset as
        last fetched, minus the position): 0 when caught up."""
        ...


class Bus(Protocol):
    """Where stages publish and from which they consume: Kafka, or the in-process bus."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Return once the record is durable (on Kafka: acknowledged by all in-sync replicas)."""
        ...

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        """A new, not yet started member of ``group`` reading ``topics``."""
        ...


class Stage(Protocol):
    """A long-running part of the pipeline (receiver, processor, sink, simulator)."""

    name: str

    @property
    def task(self) -> "asyncio.Task[None] | None":
        """The stage's running task, for the supervisor to watch; None when not running."""
        ...

    async def start(self) -> None: ...

    async def drain(self, timeout_s: float) -> None:
        """Finish what is already on the stage's input, then return (bounded by ``timeout_s``)."""
        ...

    async def stop(self) -> None:
        """Stop intake, finish the current batch, release resources; harmless twice."""
        ...
