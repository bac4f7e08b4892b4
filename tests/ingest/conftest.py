"""Fixtures of the ingest tests: one stoppable Kafka broker shared by the durability tests."""

from collections.abc import Iterator

import pytest

from tests.ingest.support import OwnKafka, own_kafka_broker


@pytest.fixture(scope="package")
def own_kafka() -> Iterator[OwnKafka]:
    """A broker that these tests stop and start; each test leaves it running."""
    with own_kafka_broker() as kafka:
        yield kafka
