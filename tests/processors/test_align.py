"""The merge of a shard's input topics in write-time order (processors/align.py)."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.align import Aligner
from voicepulse.types import Record

TOPICS = ("status", "resources")


def _log(topic: str, times: list[int]) -> list[tuple[int, Record]]:
    return [(t, Record(topic, 0, offset, None, b"")) for offset, t in enumerate(times)]


@settings(max_examples=50, deadline=None)
@given(
    status=st.lists(st.integers(0, 100), max_size=30).map(sorted),
    resources=st.lists(st.integers(0, 100), max_size=30).map(sorted),
    seed=st.integers(0, 2**32),
)
def test_any_fetch_chunking_gives_the_write_order(
    status: list[int], resources: list[int], seed: int
) -> None:
    """However the fetches fall (chunks of each topic in any order and size), the records come
    out in timestamp order, ties by topic then offset: the order of one sorted merge."""
    logs = {"status": _log("status", status), "resources": _log("resources", resources)}
    want = sorted((t, TOPICS.index(r.topic), r.offset, r) for log in logs.values() for t, r in log)
    rng = random.Random(seed)
    aligner = Aligner(TOPICS)
    fetched = dict.fromkeys(TOPICS, 0)
    out: list[Record] = []
    while any(fetched[t] < len(logs[t]) for t in TOPICS):
        topic = rng.choice([t for t in TOPICS if fetched[t] < len(logs[t])])
        size = rng.randint(1, 5)
        aligner.add(logs[topic][fetched[topic] : fetched[topic] + size])
        fetched[topic] = min(len(logs[topic]), fetched[topic] + size)
        out.extend(aligner.release(lambda t, p: fetched[t] == len(logs[t])))
    assert out == [r for *_, r in want]
    assert aligner.buffered() == 0


def test_a_topic_not_read_to_its_end_holds_the_others_back() -> None:
    aligner = Aligner(TOPICS)
    aligner.add(_log("status", [5, 6, 7]))
    assert aligner.release(lambda t, p: False) == []
    aligner.add(_log("resources", [6]))
    released = aligner.release(lambda t, p: False)
    assert [(r.topic, r.offset) for r in released] == [
        ("status", 0),
        ("status", 1),
        ("resources", 0),
    ]
    released = aligner.release(lambda t, p: True)
    assert [(r.topic, r.offset) for r in released] == [("status", 2)]


def test_a_partition_held_back_too_long_is_released_in_fetch_order() -> None:
    aligner = Aligner(TOPICS, max_wait_s=0.0)
    aligner.add(_log("status", [5, 6]))
    assert aligner.release(lambda t, p: False) == []  # starts the wait
    assert len(aligner.release(lambda t, p: False)) == 2


def test_a_partition_that_moves_on_is_never_forced_out_of_order() -> None:
    """Records stay buffered in every turn (a steady stream), but each turn releases some: the
    wait counts from the last release, so the partition is never released as fetched, and a
    record fetched late still goes before the later records of the other topic."""
    now = [0.0]
    aligner = Aligner(TOPICS, max_wait_s=10.0, clock=lambda: now[0])

    def behind(topic: str, partition: int) -> bool:
        return False  # no topic read to its end

    def turn(at: float, topic: str, offset: int, timestamp: int) -> list[tuple[str, int]]:
        now[0] = at
        aligner.add([(timestamp, Record(topic, 0, offset, None, b""))])
        return [(r.topic, r.offset) for r in aligner.release(behind)]

    assert turn(0.0, "status", 0, 10) == []
    assert turn(6.0, "resources", 0, 5) == [("resources", 0)]
    assert turn(12.0, "resources", 1, 20) == [("status", 0)]
    assert turn(14.0, "status", 1, 15) == [("status", 1)]
    assert turn(20.0, "status", 2, 25) == [("resources", 1)]
    assert aligner.buffered() == 1


def test_dropped_partitions_are_forgotten_and_full_buffers_reported() -> None:
    aligner = Aligner(TOPICS, max_buffered=2)
    aligner.add(_log("status", [1, 2]))
    assert aligner.full() == {("status", 0)}
    aligner.drop([0])
    assert aligner.buffered() == 0
    assert aligner.full() == set()
