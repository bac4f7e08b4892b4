"""On real Kafka: ensure_topics creates what is missing, compacted where asked, and leaves
existing topics as they are."""

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from voicepulse.bus import ensure_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(60)]


async def _describe(bootstrap: str, topic: str) -> tuple[int, str]:
    """(partition count, cleanup.policy) of ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})]
        )
        [(_, _, _, _, configs)] = response.resources
        policy = next(value for name, value, *_ in configs if name == "cleanup.policy")
        return len(described["partitions"]), policy
    finally:
        await admin.close()


async def test_missing_topics_are_created_compacted_where_asked_existing_ones_kept(
    kafka_bootstrap: str, namespace: str
) -> None:
    plain, log = f"{namespace}plain", f"{namespace}log"
    await ensure_topics(
        kafka_bootstrap, [plain], compacted=[log], partitions=2, replication_factor=1
    )
    await ensure_topics(
        kafka_bootstrap, [plain, log], compacted=[log], partitions=5, replication_factor=1
    )
    assert await _describe(kafka_bootstrap, plain) == (2, "delete")
    assert await _describe(kafka_bootstrap, log) == (2, "compact")
