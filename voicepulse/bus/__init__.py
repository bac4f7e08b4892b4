"""The bus every stage publishes to and consumes from: Kafka, or the in-process default.

For stages whose state must survive a crash on Kafka: :class:`StatefulStage` runs a
:class:`StateHandler` whose per-partition state lives in a compacted changelog
(:func:`read_changelog`), committing each turn's outputs, changelog entries and input offsets
in one :class:`Transaction` (:class:`TransactionalProducer`). :func:`ensure_topics` creates
topics, compacted ones included.
"""

from voicepulse.bus.admin import ensure_topics
from voicepulse.bus.changelog import Entries, read_changelog
from voicepulse.bus.kafka import KafkaBus
from voicepulse.bus.memory import InProcessBus
from voicepulse.bus.stateful import HandlerStage, Poll, StatefulStage, StateHandler
from voicepulse.bus.transactional import Transaction, TransactionalProducer
from voicepulse.settings import Settings

__all__ = [
    "Entries",
    "HandlerStage",
    "InProcessBus",
    "KafkaBus",
    "Poll",
    "StateHandler",
    "StatefulStage",
    "Transaction",
    "TransactionalProducer",
    "create_bus",
    "ensure_topics",
    "read_changelog",
]


def create_bus(settings: Settings, *, namespace: str = "") -> KafkaBus | InProcessBus:
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
