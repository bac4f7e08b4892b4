"""On real Kafka: a stage whose per-partition state lives in a changelog counts every record
exactly once across restarts and crashes, and its drain does not wait for a stage that is
not running."""

import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from tests.bus.kafka import PARTITIONS, visible
from tests.helpers import eventually
from voicepulse.bus import Entries, KafkaBus, Poll, StatefulStage, Transaction

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

KEYS = [f"key{i}".encode() for i in range(7)]


class Counting:
    """Counts records per key; each new count is an output and a changelog entry."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.counts: dict[int, dict[bytes, int]] = {}
        self.applied = 0
        self._crash_at = crash_at

    async def restore(self, partition: int, entries: Entries) -> None:
        self.counts[partition] = {key: int(value or b"0") async for key, value in entries}

    def revoke(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.counts.pop(partition, None)

    async def turn(self, poll: Poll, tx: Transaction) -> bool:
        for record in poll.records:
            if self.applied == self._crash_at:
                raise RuntimeError("crash before the commit")
            assert record.key is not None
            counts = self.counts[record.partition]
            counts[record.key] = counts.get(record.key, 0) + 1
            value = str(counts[record.key]).encode()
            tx.send("counts", record.key, value)
            tx.log(record.partition, record.key, value)
            self.applied += 1
        tx.consumed(poll.records)
        return True


def _stage(bootstrap: str, namespace: str, handler: Counting) -> StatefulStage:
    return StatefulStage(
        "count",
        bootstrap,
        handler,
        topics=["in"],
        outputs=["counts"],
        changelog="count-log",
        group="counter",
        instance_id="0",
        namespace=namespace,
        partitions=PARTITIONS,
        max_records=5,
    )


async def _publish(bus: KafkaBus, first: int, last: int) -> None:
    for n in range(first, last):
        await bus.publish("in", KEYS[n % len(KEYS)], f"{n}".encode())


async def _counts(bootstrap: str, namespace: str) -> list[tuple[bytes, int]]:
    return [(k, int(v or b"0")) for _, k, v in await visible(bootstrap, f"{namespace}counts")]


def _expected(records: int) -> Counter[bytes]:
    return Counter(KEYS[n % len(KEYS)] for n in range(records))


def _exactly_once(counts: list[tuple[bytes, int]], records: int) -> None:
    """Each key's counts on the output are 1, 2, ... its number of records, each once."""
    want = _expected(records)
    for key in KEYS:
        assert [n for k, n in counts if k == key] == list(range(1, want[key] + 1)), key


async def test_a_restarted_stage_carries_on_from_its_restored_state(
    kafka_bootstrap: str, namespace: str
) -> None:
    async with KafkaBus(kafka_bootstrap, namespace=namespace, partitions=PARTITIONS) as bus:
        await bus.ensure_topics(["in"])
        first = Counting()
        async with _stage(kafka_bootstrap, namespace, first) as stage:
            await _publish(bus, 0, 40)
            await eventually(_applied(first), lambda n: n == 40)
            await stage.drain(10)
        second = Counting()
        async with _stage(kafka_bootstrap, namespace, second) as stage:
            await _publish(bus, 40, 60)
            await eventually(_applied(second), lambda n: n == 20)
            await stage.drain(10)
            restored = {k: n for counts in second.counts.values() for k, n in counts.items()}
    assert restored == dict(_expected(60))
    _exactly_once(await _counts(kafka_bootstrap, namespace), 60)


async def test_a_crash_before_the_commit_is_redone_by_the_next_run(
    kafka_bootstrap: str, namespace: str
) -> None:
    """The handler dies mid-turn: nothing of that turn is committed; the next run (same
    instance id) restores the committed state and redoes the turn, counting each record once."""
    async with KafkaBus(kafka_bootstrap, namespace=namespace, partitions=PARTITIONS) as bus:
        await bus.ensure_topics(["in"])
        await _publish(bus, 0, 50)
        crashing = _stage(kafka_bootstrap, namespace, Counting(crash_at=23))
        await crashing.start()
        await eventually(_done(crashing), bool)
        with pytest.raises(RuntimeError, match="crash before the commit"):
            await crashing.stop()
        again = Counting()
        async with _stage(kafka_bootstrap, namespace, again) as stage:
            await eventually(_total(again), lambda n: n == 50)
            await stage.drain(10)
    _exactly_once(await _counts(kafka_bootstrap, namespace), 50)


async def test_drain_returns_at_once_when_the_stage_is_not_running(
    kafka_bootstrap: str, namespace: str
) -> None:
    """Never started, or crashed: no poll will ever find it idle, so drain does not wait."""
    never = _stage(kafka_bootstrap, namespace, Counting())
    started = time.monotonic()
    await never.drain(10)
    assert time.monotonic() - started < 1
    async with KafkaBus(kafka_bootstrap, namespace=namespace, partitions=PARTITIONS) as bus:
        await bus.ensure_topics(["in"])
        await _publish(bus, 0, 5)
        crashing = _stage(kafka_bootstrap, namespace, Counting(crash_at=0))
        await crashing.start()
        try:
            await eventually(_done(crashing), bool)
            started = time.monotonic()
            await crashing.drain(10)
            assert time.monotonic() - started < 1
        finally:
            with pytest.raises(RuntimeError):
                await crashing.stop()


def _applied(handler: Counting) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return handler.applied

    return probe


def _total(handler: Counting) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return sum(n for counts in handler.counts.values() for n in counts.values())

    return probe


def _done(stage: StatefulStage) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return stage.task is not None and stage.task.done()

    return probe
