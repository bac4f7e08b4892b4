"""Topic administration on Kafka: create the topics a stage needs, and wait until they are led.

aiokafka's errors are translated into :mod:`voicepulse.errors` here.
"""

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from voicepulse.errors import BusError, BusUnavailable

__all__ = ["create_topics", "ensure_topics"]

logger = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS: Final = 36
_COMPACTED: Final = {"cleanup.policy": "compact"}


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int,
    compacted: Iterable[str] = (),
    client_id: str = "voicepulse",
) -> None:
    """Create those of ``topics`` and ``compacted`` (broker-side names) that do not exist yet,
    ``compacted`` ones with ``cleanup.policy=compact``; existing topics are left as they are.

    Returns once every partition of each new topic has a leader. Raises
    :class:`BusUnavailable` when Kafka does not answer, :class:`BusError` when it refuses.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        plain = [NewTopic(t, partitions, replication_factor) for t in topics if t not in existing]
        logs = [
            NewTopic(t, partitions, replication_factor, topic_configs=_COMPACTED)
            for t in compacted
            if t not in existing
        ]
        if plain or logs:
            await create_topics(admin, [*plain, *logs])
    except KafkaError as exc:
        raise BusUnavailable(f"Kafka at {bootstrap_servers} did not answer: {exc}") from exc
    finally:
        await admin.close()


async def create_topics(
    admin: AIOKafkaAdminClient, new: Sequence[NewTopic], *, timeout_s: float = 30.0
) -> None:
    """Create ``new`` topics and return once every partition of each has a leader.

    A topic is usable only when the broker knows its partitions' leaders; a client that
    produces or fetches earlier gets NotLeaderForPartition, which a transactional producer
    turns into an aborted transaction. One that already exists counts as created.
    """
    response = await admin.create_topics(list(new))
    for topic, code, *_ in response.topic_errors:
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            raise BusError(f"could not create topic {topic}: Kafka error code {code}")
    names = [t.name for t in new]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not _all_led(await admin.describe_topics(names)):
        if asyncio.get_running_loop().time() > deadline:
            raise BusUnavailable(f"topics {', '.join(names)} have no leaders after {timeout_s} s")
        await asyncio.sleep(0.1)
    logger.info("created topics %s", ", ".join(names))


def _all_led(described: Sequence[dict[str, Any]]) -> bool:
    return bool(described) and all(
        topic["error_code"] == 0
        and topic["partitions"]
        and all(p["error_code"] == 0 and p["leader"] >= 0 for p in topic["partitions"])
        for topic in described
    )
