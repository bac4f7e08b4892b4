"""The input topics of one shard, merged into one stream in the order they were written.

A shard reads four topics (call status, debugger, Call resources, Insights). Kafka hands them
over in chunks whose interleaving depends on fetch timing: after a restart with a backlog, one
fetch may bring minutes of status callbacks before the Call resources of the same minutes, and
the stream time those callbacks set would close windows the resources still belong to. So the
shard is fed the records of its topics merged by their Kafka timestamps (the time each was
written), as an uninterrupted processor reading in real time would have seen them:

- A record is released only when every other input topic of its partition either has a
  buffered record (which comes no earlier in the merge) or has been read up to its end (the
  last stable offset, as the broker gives it at that moment: an end an earlier fetch reported
  may be passed already, see :func:`voicepulse.bus.stateful.read_to_end`): nothing written before it
  can still arrive.
- Ties break by topic, then offset, so the merge is a function of the logs alone.
- A partition held back longer than ``max_wait_s`` (a topic whose end cannot be learnt) is
  released as it is, and logged: availability wins over exact order there. Held back means
  nothing released: the wait counts from the last record the partition released, so a
  partition that moves on while records stay buffered behind it (a steady stream, a long
  backlog) is never forced out of order.
"""

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from voicepulse.types import Record

__all__ = ["Aligner"]

logger = logging.getLogger(__name__)

CaughtUp = Callable[[str, int], bool]
"""Whether a topic's partition has been read up to its end (nothing more to fetch now)."""


class Aligner:
    """Per-partition buffers of fetched records, released in write-time order."""

    def __init__(
        self,
        topics: Sequence[str],
        *,
        max_wait_s: float = 10.0,
        max_buffered: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topics = tuple(topics)
        self._buffers: dict[tuple[str, int], deque[tuple[int, Record]]] = {}
        # Per partition with records buffered: when it last released one (or first had one).
        self._waiting_since: dict[int, float] = {}
        self._max_wait_s = max_wait_s
        self._max_buffered = max_buffered
        self._clock = clock

    def add(self, records: Iterable[tuple[int, Record]]) -> None:
        """Buffer fetched records, each with its Kafka timestamp (ms), in offset order."""
        for timestamp, record in records:
            key = (record.topic, record.partition)
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = deque()
            buffer.append((timestamp, record))

    def full(self) -> set[tuple[str, int]]:
        """The topic partitions whose buffers are full (pause fetching them)."""
        return {key for key, buffer in self._buffers.items() if len(buffer) >= self._max_buffered}

    def buffered(self) -> int:
        return sum(len(buffer) for buffer in self._buffers.values())

    def release(self, caught_up: CaughtUp) -> list[Record]:
        """The records that can be applied now, per partition in merge order."""
        out: list[Record] = []
        partitions = sorted({p for (_, p), buffer in self._buffers.items() if buffer})
        for partition in partitions:
            released = self._release(partition, caught_up, self._overdue(partition))
            out.extend(released)
            if not any(self._buffers.get((t, partition)) for t in self._topics):
                self._waiting_since.pop(partition, None)
            elif released or partition not in self._waiting_since:
                self._waiting_since[partition] = self._clock()
        return out

    def _overdue(self, partition: int) -> bool:
        since = self._waiting_since.get(partition)
        if since is None or self._clock() - since < self._max_wait_s:
            return False
        logger.warning(
            "partition %d held back for %.0f s: an input topic's end is unknown; "
            "releasing its records in the order fetched",
            partition,
            self._max_wait_s,
        )
        return True

    def _release(self, partition: int, caught_up: CaughtUp, force: bool) -> list[Record]:
        buffers = [self._buffers.get((topic, partition)) or deque() for topic in self._topics]
        heap = [
            (buffer[0][0], index, buffer[0][1].offset)
            for index, buffer in enumerate(buffers)
            if buffer
        ]
        heapq.heapify(heap)
        ready = {
            index: bool(buffer) or caught_up(self._topics[index], partition)
            for index, buffer in enumerate(buffers)
        }
        out: list[Record] = []
        while heap:
            _, index, _ = heap[0]
            if not force and not all(ready[i] for i in range(len(buffers)) if i != index):
                break
            heapq.heappop(heap)
            buffer = buffers[index]
            out.append(buffer.popleft()[1])
            if buffer:
                heapq.heappush(heap, (buffer[0][0], index, buffer[0][1].offset))
            else:
                ready[index] = caught_up(self._topics[index], partition)
        return out

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the buffered records of these partitions (revoked, or rewound)."""
        gone = set(partitions)
        for key in [key for key in self._buffers if key[1] in gone]:
            del self._buffers[key]
        for partition in gone:
            self._waiting_since.pop(partition, None)

    def clear(self) -> None:
        self._buffers.clear()
        self._waiting_since.clear()
