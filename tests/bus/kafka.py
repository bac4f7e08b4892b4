"""Helpers for the bus tests on real Kafka: topics, and what readers see of them."""

from aiokafka import AIOKafkaConsumer, TopicPartition

from voicepulse.bus import ensure_topics

PARTITIONS = 3


async def topics(bootstrap: str, namespace: str, *plain: str, compacted: str = "log") -> None:
    """Create ``plain`` topics and the compacted ``compacted`` one, with :data:`PARTITIONS`."""
    await ensure_topics(
        bootstrap,
        [f"{namespace}{t}" for t in plain],
        compacted=[f"{namespace}{compacted}"],
        partitions=PARTITIONS,
        replication_factor=1,
    )


async def visible(
    bootstrap: str, topic: str, *, committed_only: bool = True
) -> list[tuple[int, bytes, bytes | None]]:
    """(partition, key, value) of every record on ``topic`` (broker-side name) that a reader
    sees up to the topic's end: under ``read_committed``, or every record written."""
    isolation = "read_committed" if committed_only else "read_uncommitted"
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation
    )
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        seen: list[tuple[int, bytes, bytes | None]] = []
        while any([await reader.position(tp) < ends[tp] for tp in tps]):
            batches = await reader.getmany(timeout_ms=1000)
            for tp, messages in batches.items():
                seen.extend((tp.partition, m.key, m.value) for m in messages)
        return sorted(seen, key=lambda r: r[0])
    finally:
        await reader.stop()


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    """The offset ``group`` (broker-side name) has committed for ``tp``."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        offset: int | None = await reader.committed(tp)
        return offset
    finally:
        await reader.stop()
