"""The drainer on real Kafka: a spool left by an earlier run (several segments, more records
than one window of sends) reaches the topic complete and in order per key, and each segment is
deleted once Kafka acknowledged it."""

from pathlib import Path

import pytest

from ingest.metrics import ReceiverMetrics
from ingest.publisher import DurablePublisher
from ingest.spool import Spool, SpooledRecord
from tests.helpers import eventually, read_topic
from voicepulse import topics
from voicepulse.bus import KafkaBus
from voicepulse.envelope import Envelope

pytestmark = pytest.mark.kafka

KEYS = ("AC" + "1" * 32, "AC" + "2" * 32)


def _record(i: int) -> SpooledRecord:
    account = KEYS[i % 2] if i % 10 else KEYS[0]
    envelope = Envelope(id=f"e{i}", type="call-status", account_sid=account, source="t", fields={})
    return SpooledRecord(topics.CALL_STATUS, account.encode(), envelope.to_json())


async def _fill(directory: Path, count: int) -> None:
    spool = Spool(directory, max_bytes=1 << 30, segment_bytes=64 * 1024)
    spool.open()
    try:
        for start in range(0, count, 100):
            for i in range(start, start + 100):
                await spool.append(_record(i))
    finally:
        spool.close()


def _segments(directory: Path) -> int:
    return len(list(directory.glob("*.seg")))


async def test_left_spool_drains_in_order(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    await _fill(tmp_path, 1200)
    assert _segments(tmp_path) > 2
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    metrics = ReceiverMetrics()
    publisher = DurablePublisher(
        bus, Spool(tmp_path, max_bytes=1 << 30, segment_bytes=64 * 1024), metrics
    )
    try:
        await publisher.start()
        assert publisher.spooling

        async def spooling() -> bool:
            return publisher.spooling

        await eventually(spooling, lambda still: not still, timeout_s=60)
    finally:
        await publisher.stop()
        await bus.stop()
    assert (
        metrics.registry.get_sample_value("voicepulse_ingest_spool_drained_records_total") == 1200
    )
    assert _segments(tmp_path) == 0
    per_key: dict[str, list[int]] = {}
    for envelope in await read_topic(kafka_bootstrap, namespace, topics.CALL_STATUS):
        per_key.setdefault(envelope.account_sid, []).append(int(envelope.id[1:]))
    expected = {k: [i for i in range(1200) if _record(i).key == k.encode()] for k in KEYS}
    assert per_key == expected
