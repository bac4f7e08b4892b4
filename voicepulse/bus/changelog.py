"""Reading a stage's state back from its changelog: a compacted topic, one partition per
input partition, written only inside transactions (:mod:`voicepulse.bus.transactional`).

:func:`read_changelog` reads one partition from its beginning to its end as it is when the read
starts, under ``read_committed``: entries of aborted or still open transactions are never seen,
so what it yields is the state as of the last committed transaction. Entries come in the order
written; a later entry for a key replaces an earlier one, a None value (a tombstone) deletes it.
Compaction may already have dropped replaced entries; the last per key is always kept.
"""

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import KafkaError

from voicepulse.errors import BusUnavailable

__all__ = ["Entries", "read_changelog"]

logger = logging.getLogger(__name__)

_FETCH_TIMEOUT_MS: Final = 500
_MAX_RECORDS: Final = 10_000

Entries = AsyncIterator[tuple[bytes, bytes | None]]
"""A changelog partition's (key, value) entries, in the order written (None: a tombstone)."""


async def read_changelog(
    bootstrap_servers: str, topic: str, partition: int
) -> AsyncGenerator[tuple[bytes, bytes | None], None]:
    """The (key, value) entries of partition ``partition`` of changelog ``topic`` (its
    broker-side name), in order, up to its end. :class:`BusUnavailable` when Kafka fails.

    Close it (``contextlib.aclosing``) when not read to the end, to release its consumer.
    """
    tp = KafkaTopicPartition(topic, partition)
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    try:
        await reader.start()
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = (await reader.end_offsets([tp]))[tp]
        while await reader.position(tp) < end:
            batch = await reader.getmany(tp, timeout_ms=_FETCH_TIMEOUT_MS, max_records=_MAX_RECORDS)
            for message in batch.get(tp, ()):
                yield message.key, message.value
    except KafkaError as exc:
        raise BusUnavailable(f"reading changelog {topic} [{partition}] failed: {exc}") from exc
    finally:
        await reader.stop()
