"""The bus every stage publishes to and consumes from: Kafka, or the in-process default."""

from voicepulse.bus.kafka import KafkaBus
from voicepulse.bus.memory import InProcessBus
from voicepulse.settings import Settings
from voicepulse.types import Bus

__all__ = ["InProcessBus", "KafkaBus", "create_bus"]


def create_bus(settings: Settings, *, namespace: str = "") -> Bus:
    """Kafka when bootstrap servers are configured, else the in-process bus.

    ``namespace`` prefixes every topic and consumer group name on Kafka (tests use it to keep
    each test's topics apart); stages always speak the plain names of :mod:`voicepulse.topics`.
    """
    if settings.kafka_bootstrap_servers:
        return KafkaBus(
            settings.kafka_bootstrap_servers,
            client_id=settings.kafka_client_id,
            partitions=settings.kafka_topic_partitions,
            replication_factor=settings.kafka_replication_factor,
            delivery_timeout_s=settings.kafka_delivery_timeout_s,
            namespace=namespace,
        )
    return InProcessBus()
