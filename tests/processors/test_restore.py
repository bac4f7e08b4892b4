"""A shard restored from its changelog at any batch boundary continues exactly like the shard
that never stopped (the in-memory half of the crash guarantee; tests/processors/test_crash.py
checks the Kafka half)."""

import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.engine import EngineConfig, Shard
from processors.processor import Output, Processor
from processors.state import restore_entry
from simulator import delivery, envelopes, generate
from tests.processors.streams import normalise, tenants
from voicepulse.types import Record

START = int(datetime(2026, 11, 26, 10, 0, tzinfo=UTC).timestamp())
CONFIG = EngineConfig(grace_s=120, call_timeout_s=600, horizon_s=900)


def _run(records: list[Record], batch: int, crash_at: set[int]) -> dict[str, dict[str, Any]]:
    processor = Processor(CONFIG, changelog=True)
    log: dict[str, bytes | None] = {}
    rows: dict[str, dict[str, Any]] = {}
    position = 0
    turn = 0
    while position < len(records):
        if turn in crash_at:  # lose the in-memory state; restore from the changelog
            shard = Shard(CONFIG)
            for key, value in log.items():
                restore_entry(shard, key, value)
            shard.rebuild_timers()
            processor.shards = {0: shard}
            position = shard.offsets.get("in", 0)
        out = Output()
        processor.feed(records[position : position + batch], out)
        processor.drain(out)
        position += batch
        turn += 1
        for key, value in out.changelog.get(0, []):
            log[key] = value
        for row in out.rows:
            rows[row.id] = dict(row.fields)
    processor.tick(2**40)
    for row in processor.drain(Output()).rows:
        rows[row.id] = dict(row.fields)
    return rows


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    batch=st.integers(5, 300),
    crashes=st.sets(st.integers(1, 60), max_size=8),
)
def test_restored_shard_gives_the_same_rows(seed: int, batch: int, crashes: set[int]) -> None:
    rng = random.Random(seed)
    traffic = generate(rng, tenants(rng, [0, 3, 4, 5]), START, 240)
    delivered = delivery(rng, envelopes(traffic), max_delay_s=60, duplicate_rate=0.2)
    records = [Record("in", 0, i, None, e.to_json()) for i, e in enumerate(delivered)]
    clean = _run(records, batch, set())
    crashed = _run(records, batch, crashes)
    assert set(clean) == set(crashed)
    for key in clean:
        assert normalise(clean[key]) == normalise(crashed[key]), key
