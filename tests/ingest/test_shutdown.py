"""Graceful shutdown on real Kafka: stop accepting, finish the requests in flight, flush the
producer, close. Every request answered 204 is on the topic; none is answered anything else."""

import asyncio
import time
import uuid

import httpx
import pytest

from ingest.app import STATUS_PATH
from ingest.tenants import TenantRegistry
from tests.conftest import SettingsFactory
from tests.helpers import post_signed, read_topic
from voicepulse import topics
from voicepulse.pipeline import Role, build_pipeline

pytestmark = pytest.mark.kafka


async def test_stop_finishes_requests_in_flight(
    kafka_bootstrap: str,
    namespace: str,
    settings_factory: SettingsFactory,
    demo_tenants: TenantRegistry,
) -> None:
    pipeline = build_pipeline(
        settings_factory(kafka_bootstrap_servers=kafka_bootstrap), {Role.SERVE}, namespace=namespace
    )
    await pipeline.start()
    assert pipeline.receiver is not None
    url = f"http://127.0.0.1:{pipeline.receiver.port}{STATUS_PATH}"
    tenant = next(iter(demo_tenants.values()))
    call = "CA" + uuid.uuid4().hex
    answered_at: dict[str, float] = {}
    flowing = asyncio.Event()

    async def post(client: httpx.AsyncClient, sequence: int) -> int | None:
        params = {
            "AccountSid": tenant.account_sid,
            "CallSid": call,
            "CallStatus": "ringing",
            "Direction": "outbound-api",
            "SequenceNumber": str(sequence),
        }
        try:
            response = await post_signed(client, url, tenant, params)
        except httpx.TransportError:
            return None  # refused: the receiver had stopped accepting
        if response.status_code == 204:
            answered_at[f"{call}:{sequence}"] = time.monotonic()
            if len(answered_at) >= 10:
                flowing.set()
        return response.status_code

    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await post(client, 0)  # warm: topic metadata and connections
        tasks = [asyncio.create_task(post(client, i)) for i in range(1, 200)]
        await flowing.wait()  # connections are up and requests are flowing
        stop_began = time.monotonic()
        await pipeline.stop()
        statuses = await asyncio.gather(*tasks)
    assert set(statuses) <= {204, None}, statuses
    finished_during_stop = [t for t in answered_at.values() if t >= stop_began]
    assert finished_during_stop, "no request was in flight when the stop began"
    on_topic = {e.id for e in await read_topic(kafka_bootstrap, namespace, topics.CALL_STATUS)}
    assert set(answered_at) <= on_topic
