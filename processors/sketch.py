"""The QueueTime summary: a log-bucketed histogram that merges by adding counts.

The format is the contract in :class:`voicepulse.messages.HealthWindow`: a value ``v >= 1`` ms
lands in bucket ``ceil(ln(v) / ln(gamma))``, the value 0 in bucket -1; a bucket stands for
``2 * gamma**i / (gamma + 1)``, within ``alpha`` (1 %) of every value in it. Quantiles use the
nearest rank ``ceil(p * n)``, computed in integers.
"""

import math
from collections.abc import Iterable, Mapping
from functools import lru_cache

from voicepulse.messages import QUEUE_TIME_GAMMA

__all__ = ["ZERO_BUCKET", "bucket", "bucket_value", "histogram", "quantile", "rank"]

_LN_GAMMA = math.log(QUEUE_TIME_GAMMA)
ZERO_BUCKET = -1


@lru_cache(maxsize=65536)
def bucket(value_ms: int) -> int:
    """The bucket index of one queue time in milliseconds (negative values count as 0)."""
    if value_ms <= 0:
        return ZERO_BUCKET
    return math.ceil(math.log(value_ms) / _LN_GAMMA)


def bucket_value(index: int) -> float:
    """The value a bucket stands for."""
    if index == ZERO_BUCKET:
        return 0.0
    return 2 * QUEUE_TIME_GAMMA**index / (QUEUE_TIME_GAMMA + 1)


def histogram(values: Mapping[int, int]) -> dict[str, int]:
    """The wire histogram (bucket index as a string -> count) of a value -> count multiset."""
    buckets: dict[int, int] = {}
    for value, count in values.items():
        if count:
            index = bucket(value)
            buckets[index] = buckets.get(index, 0) + count
    return {str(index): buckets[index] for index in sorted(buckets)}


def rank(percent: int, total: int) -> int:
    """The 1-based nearest rank ``ceil(percent / 100 * total)``, in integers (no float error)."""
    return max(1, (percent * total + 99) // 100)


def quantile(hist: Mapping[str, int], percent: int, max_ms: int | None) -> float | None:
    """The percentile from a wire histogram (nearest rank), capped at the exact maximum."""
    items: Iterable[tuple[int, int]] = sorted((int(k), c) for k, c in hist.items() if c > 0)
    ordered = list(items)
    total = sum(c for _, c in ordered)
    if total == 0:
        return None
    wanted = rank(percent, total)
    running = 0
    for index, count in ordered:
        running += count
        if running >= wanted:
            value = bucket_value(index)
            return min(value, float(max_ms)) if max_ms is not None else value
    raise AssertionError("unreachable: the ranks add up to the total")
