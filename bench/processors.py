"""Processor throughput: call assembly + health windows against Quix Streams, same topic.

Run: ``KAFKA_BOOTSTRAP_SERVERS=host:port python -m bench.processors [--events N]``

1. Preload N status-callback envelopes (the traffic model, 20 tenants of every profile) on a
   fresh topic.
2. VoicePulse: one consumer reads the topic (aiokafka), decodes the JSON, assembles calls and
   keeps the full health windows; fact and row envelopes are built and encoded, not published.
3. Quix Streams (the baseline), same topic, same process: JSON deserialiser, event time from the
   callback's Timestamp, a one-minute tumbling window (grace 2 min) per subaccount with a count
   and a sum of CallDuration (RocksDB state, changelog topics off, nothing produced).
4. VoicePulse again, without Kafka: the same envelopes from an in-memory list of bytes,
   wrapped in records batch by batch as a consumer does; three runs, each with a fresh
   processor, the one with the least CPU time reported.

Before measuring, the garbage collector is tuned as the ``voicepulse`` command tunes it at
start (:func:`voicepulse.runtime.tune_gc`); both contenders run in this one process with it.

Reported: events/s by wall clock and by this process's CPU time (the machine is shared, so CPU
time is the steadier figure), and the ratio VoicePulse / Quix Streams.
"""

import argparse
import asyncio
import logging
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from processors.engine import EngineConfig
from processors.processor import Output, Processor
from simulator import PROFILES, SimTenant, envelopes, generate
from voicepulse.runtime import tune_gc
from voicepulse.types import Record

Timing = tuple[float, float]  # (wall seconds, CPU seconds)


def status_callbacks(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` status-callback envelopes as (key, JSON), in event-time order."""
    rng = random.Random(1)
    tenants = [
        SimTenant(f"AC{i:032x}", None, PROFILES[i % len(PROFILES)], 1.0, 2.0) for i in range(20)
    ]
    seconds = count // 100 + 60  # about 3.5 callbacks per call, 40 calls a second
    while True:
        model = generate(rng, tenants, 1_795_687_200, seconds)
        out = [(e.key, e.to_json()) for e in envelopes(model) if e.type == "call-status"]
        if len(out) >= count:
            return out[:count]  # one model, in event-time order: nothing is late
        seconds *= 2


def _measure(run: Callable[[], Any]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def in_memory(values: list[bytes], batch: int = 2000) -> Timing:
    """The processor fed from a list of JSON bytes, wrapped in records batch by batch (as a
    consumer does), so no input but the current batch is on the heap."""
    processor = Processor(EngineConfig())

    def run() -> None:
        for start in range(0, len(values), batch):
            records = [
                Record("twilio.call-status", 0, offset, None, values[offset])
                for offset in range(start, min(start + batch, len(values)))
            ]
            _step(processor, records)

    return _measure(run)


def _step(processor: Processor, records: list[Record]) -> None:
    out = Output()
    processor.feed(records, out)
    processor.drain(out)
    for envelope in (*out.facts, *out.rows):
        envelope.to_json()


async def preload(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def voicepulse_on_kafka(bootstrap: str, topic: str, count: int) -> Timing:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-vp-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    processor = Processor(EngineConfig())
    seen = 0
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            records = [
                Record("twilio.call-status", tp.partition, m.offset, m.key, m.value)
                for tp, messages in batches.items()
                for m in messages
            ]
            _step(processor, records)
            seen += len(records)
    finally:
        timing = (time.perf_counter() - wall, time.process_time() - cpu)
        await consumer.stop()
    return timing


def quix_on_kafka(bootstrap: str, topic_name: str, count: int) -> Timing:
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Sum

    with tempfile.TemporaryDirectory() as state_dir:
        app = Application(
            broker_address=bootstrap,
            consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            use_changelog_topics=False,
            state_dir=state_dir,
            loglevel="WARNING",
        )
        topic = app.topic(
            topic_name, value_deserializer="json", timestamp_extractor=_quix_event_time
        )
        sdf = app.dataframe(topic)
        sdf = sdf.apply(lambda value: {"duration": value.get("call_duration") or 0})
        sdf = (
            sdf.tumbling_window(timedelta(minutes=1), grace_ms=timedelta(minutes=2))
            .agg(calls=Count(), talk=Sum("duration"))
            .current()
        )
        seen = 0

        def done(_: Any) -> None:
            nonlocal seen
            seen += 1
            if seen >= count:
                app.stop()

        sdf.update(done)
        return _measure(app.run)


def _quix_event_time(value: Any, headers: Any, timestamp: float, kind: Any) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(value["timestamp"]).timestamp() * 1000)


def memory_per_call(values: list[bytes]) -> tuple[float, float]:
    """Bytes of shard state per open call (its callbacks so far) and per finished call kept
    for the dedupe horizon, measured with tracemalloc."""
    import tracemalloc

    from processors.processor import decode

    docs = [decode(v) for v in values]
    opening = [d for d in docs if d["call_status"] in ("initiated", "ringing")]
    results = []
    for subset in (opening, docs):
        processor = Processor(EngineConfig())
        shard = processor.shard(0)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for doc in subset:
            shard.apply_doc(doc)
        shard.take_changes()
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        results.append(used / max(len(shard.calls), 1))
    return results[0], results[1]


def _report(name: str, count: int, timing: Timing) -> tuple[float, float]:
    wall, cpu = count / timing[0], count / timing[1]
    print(f"{name:<42} {wall:>10,.0f} ev/s wall {cpu:>10,.0f} ev/s CPU")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    messages = status_callbacks(args.events)
    tune_gc()  # as the voicepulse command does at start; the same for Quix Streams
    count = len(messages)
    print(f"{count:,} status-callback envelopes; load average {_load()}")
    values = [v for _, v in messages]
    runs = [in_memory(values) for _ in range(3)]  # a fresh processor each time
    memory = _report("VoicePulse, in memory (best of 3)", count, min(runs, key=lambda t: t[1]))
    open_call, kept_call = memory_per_call([v for _, v in messages])
    print(
        f"state per open call {open_call:,.0f} B, "
        f"per finished call (with windows) {kept_call:,.0f} B"
    )
    if not args.bootstrap:
        print("no Kafka (set KAFKA_BOOTSTRAP_SERVERS): in-memory figure only")
        print(f"load average at the end {_load()}")
        return
    topic = f"bench.call-status.{uuid.uuid4().hex[:8]}"
    asyncio.run(preload(args.bootstrap, topic, messages))
    ours = _report(
        "VoicePulse on Kafka", count, asyncio.run(voicepulse_on_kafka(args.bootstrap, topic, count))
    )
    quix = _report(
        "Quix Streams on Kafka (count+sum windows)",
        count,
        quix_on_kafka(args.bootstrap, topic, count),
    )
    wall, cpu = ours[0] / quix[0], ours[1] / quix[1]
    print(f"ratio VoicePulse / Quix Streams: {wall:.2f}x wall, {cpu:.2f}x CPU")
    print(f"in memory vs goal 100k ev/s/core: {memory[1] / 100_000:.2f}x (CPU)")
    print(f"load average at the end {_load()}")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
