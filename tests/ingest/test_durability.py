"""Durability on a real Kafka broker of the test's own, which the tests stop and start.

- Kafka stopped in the middle of a stream: every request still gets 2xx through the spool, and
  after Kafka is back every accepted event is on the topic, in order per subaccount.
- A full spool answers 503 (and /readyz says not ready), never 2xx.
- The publish deadline is the receiver's: the bus itself waits for its delivery timeout.
"""

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from ingest.app import STATUS_PATH
from ingest.tenant_source import TenantSource
from ingest.tenants import Tenant, TenantRegistry
from tests.conftest import SettingsFactory
from tests.helpers import eventually, post_signed, read_topic
from tests.ingest.support import OwnKafka, first_occurrences, serving, status_params
from voicepulse import topics
from voicepulse.bus import KafkaBus
from voicepulse.errors import BusUnavailable
from voicepulse.settings import Settings

pytestmark = pytest.mark.kafka


def _settings(factory: SettingsFactory, kafka: OwnKafka, **extra: object) -> Settings:
    return factory(kafka_bootstrap_servers=kafka.bootstrap, kafka_publish_timeout_s=1.0, **extra)


async def test_kafka_stopped_mid_stream_loses_nothing_and_keeps_order(
    own_kafka: OwnKafka, settings_factory: SettingsFactory, demo_tenants: TenantRegistry
) -> None:
    namespace = f"d{uuid.uuid4().hex[:8]}."
    settings = _settings(settings_factory, own_kafka)
    bus = KafkaBus(own_kafka.bootstrap, namespace=namespace)
    tenants = list(demo_tenants.values())
    sent: dict[str, list[str]] = {t.account_sid: [] for t in tenants}
    statuses: list[int] = []
    kafka_down = asyncio.Event()

    async with serving(settings, TenantSource(demo_tenants), bus) as running:
        url = running.url(STATUS_PATH)
        receiver = running.receiver

        async def stream(client: httpx.AsyncClient, tenant: Tenant, after_stop: int) -> None:
            call = "CA" + uuid.uuid4().hex
            sequence = 0
            while after_stop > 0:
                params = status_params(tenant, call, sequence)
                response = await post_signed(client, url, tenant, params)
                statuses.append(response.status_code)
                if response.status_code == 204:
                    sent[tenant.account_sid].append(f"{call}:{sequence}")
                sequence += 1
                after_stop -= kafka_down.is_set()
                await asyncio.sleep(0.02)

        async def stop_kafka() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(own_kafka.stop)
            kafka_down.set()

        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(stop_kafka(), *(stream(client, t, 15) for t in tenants))
            assert set(statuses) == {204}
            assert receiver.publisher.spooling
            spooled = receiver.metrics.registry.get_sample_value(
                "voicepulse_ingest_spooled_records_total"
            )
            assert spooled is not None
            assert spooled >= 15 * len(tenants)
            await asyncio.to_thread(own_kafka.start)
            kafka_down.clear()
            # Requests keep arriving while the spool drains: they queue behind it.
            await asyncio.gather(*(stream(client, t, 0) for t in tenants))
            await asyncio.gather(*(_tail(client, url, t, sent, statuses) for t in tenants))

        async def drained() -> bool:
            return not receiver.publisher.spooling

        await eventually(drained, bool, timeout_s=60)
        assert set(statuses) == {204}

    on_topic = first_occurrences(
        await read_topic(own_kafka.bootstrap, namespace, topics.CALL_STATUS)
    )
    for tenant in tenants:
        assert on_topic[tenant.account_sid] == sent[tenant.account_sid]


async def _tail(
    client: httpx.AsyncClient,
    url: str,
    tenant: Tenant,
    sent: dict[str, list[str]],
    statuses: list[int],
) -> None:
    """A few more callbacks for a new call of ``tenant`` while the spool drains."""
    call = "CA" + uuid.uuid4().hex
    for sequence in range(5):
        response = await post_signed(client, url, tenant, status_params(tenant, call, sequence))
        statuses.append(response.status_code)
        if response.status_code == 204:
            sent[tenant.account_sid].append(f"{call}:{sequence}")


async def test_full_spool_gives_503(
    own_kafka: OwnKafka,
    settings_factory: SettingsFactory,
    demo_tenants: TenantRegistry,
    tmp_path: Path,
) -> None:
    namespace = f"f{uuid.uuid4().hex[:8]}."
    settings = _settings(settings_factory, own_kafka, spool_max_bytes=4000)
    bus = KafkaBus(own_kafka.bootstrap, namespace=namespace, delivery_timeout_s=4.0)
    tenant = next(iter(demo_tenants.values()))
    async with serving(settings, TenantSource(demo_tenants), bus) as running:
        url = running.url(STATUS_PATH)
        receiver = running.receiver
        await asyncio.to_thread(own_kafka.stop)
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                call = "CA" + uuid.uuid4().hex
                codes = []
                for sequence in range(20):
                    params = status_params(tenant, call, sequence)
                    codes.append((await post_signed(client, url, tenant, params)).status_code)
                readyz = await client.get(running.url("/readyz"))
                metrics = (await client.get(running.url("/metrics"))).text
            # The receiver's 1 s deadline is its own: the bus, as the other stages use it,
            # waits for its delivery timeout before it gives up.
            started = time.monotonic()
            with pytest.raises(BusUnavailable):
                await bus.publish(topics.HEALTH, tenant.account_sid.encode(), b"{}")
            assert 3.5 < time.monotonic() - started < 30
        finally:
            await asyncio.to_thread(own_kafka.start)
        accepted = codes.count(204)
        assert accepted >= 3
        assert codes == [204] * accepted + [503] * (20 - accepted)
        assert readyz.status_code == 503
        assert (
            f'voicepulse_ingest_rejections_total{{reason="spool_full"}} {20 - accepted}.0'
            in metrics
        )
        assert f"voicepulse_ingest_spool_records {accepted}.0" in metrics
        assert "voicepulse_ingest_bus_up 0.0" in metrics

        async def drained() -> bool:
            return not receiver.publisher.spooling

        await eventually(drained, bool, timeout_s=60)
    on_topic = first_occurrences(
        await read_topic(own_kafka.bootstrap, namespace, topics.CALL_STATUS)
    )
    assert on_topic[tenant.account_sid] == [f"{call}:{i}" for i in range(accepted)]
