"""Streaming health rows equal the generator's ground truth and a DuckDB batch recomputation,
for any traffic delivered with duplicates and in any order within the grace."""

import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.engine import EngineConfig
from simulator import PROFILES, delivery, envelopes, expected_rows, generate
from tests.processors.batch_sql import recompute
from tests.processors.streams import normalise, stream, tenants, within_alpha

START = int(datetime(2026, 11, 26, 10, 0, tzinfo=UTC).timestamp())
CONFIG = EngineConfig(grace_s=120, call_timeout_s=600, horizon_s=3600)


def _iso_key(key: tuple[str, str, int]) -> tuple[str, str, str]:
    return (key[0], key[1], datetime.fromtimestamp(key[2], UTC).isoformat())


def _compare(
    streamed: dict[tuple[str, str, str], dict[str, Any]],
    expected: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    for key in sorted(set(streamed) | set(expected)):
        got, want = streamed.get(key), expected.get(key)
        assert normalise(got) == normalise(want), key
        if got is not None and want is not None:
            for p in ("p50", "p95"):
                name = f"queue_time_{p}_ms"
                assert within_alpha(got[name], want[name]), (key, name, got[name], want[name])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    profiles=st.lists(st.integers(0, len(PROFILES) - 1), min_size=1, max_size=4),
    seconds=st.integers(30, 300),
    max_delay_s=st.integers(0, 110),
    duplicate_rate=st.floats(0, 0.5),
    batch=st.integers(1, 200),
)
def test_streaming_rows_equal_truth_and_sql(
    seed: int,
    profiles: list[int],
    seconds: int,
    max_delay_s: int,
    duplicate_rate: float,
    batch: int,
) -> None:
    rng = random.Random(seed)
    traffic = generate(rng, tenants(rng, profiles), START, seconds)
    deliveries = list(
        delivery(rng, envelopes(traffic), max_delay_s=max_delay_s, duplicate_rate=duplicate_rate)
    )
    rows, facts = stream(CONFIG, deliveries, batch=batch)
    truth = {
        _iso_key(k): v
        for k, v in expected_rows(traffic, call_timeout_s=CONFIG.call_timeout_s).items()
    }
    _compare(rows, truth)
    _compare(rows, recompute(facts, deliveries, CONFIG.call_timeout_s))
