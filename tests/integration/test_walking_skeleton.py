"""The thin slice through every stage, on the real path.

A signed status callback goes over real HTTP to uvicorn, through a real Kafka broker, through
the processor, into the DuckLake warehouse, and is read back from a second DuckDB connection
while the sink is still running. Forged and malformed requests never reach the bus.
"""

import random
import time
from typing import Any

import httpx

from ingest.app import STATUS_PATH
from ingest.tenants import TenantRegistry
from simulator.traffic import Profile, SimTenant, callback_params, one_call
from tests.conftest import SettingsFactory
from tests.helpers import eventually, post_signed, read_topic
from voicepulse import topics
from voicepulse.pipeline import Role, build_pipeline
from warehouse.lake import open_lake

ANSWERED = Profile("answered", answer_rate=1.0, short_call_rate=0, mean_talk_s=60, inbound_share=0)
BUSY = Profile("busy", answer_rate=0, busy_rate=1.0, inbound_share=0)


async def test_signed_callback_reaches_the_warehouse_through_kafka(
    kafka_bootstrap: str,
    namespace: str,
    settings_factory: SettingsFactory,
    demo_tenants: TenantRegistry,
) -> None:
    settings = settings_factory(kafka_bootstrap_servers=kafka_bootstrap)
    pipeline = build_pipeline(settings, {Role.SERVE, Role.PROCESS, Role.SINK}, namespace=namespace)
    await pipeline.start()
    try:
        assert pipeline.receiver is not None
        url = f"http://127.0.0.1:{pipeline.receiver.port}{STATUS_PATH}"
        tenant = next(iter(demo_tenants.values()))
        rng = random.Random(7)
        now = int(time.time())
        sid, parent = tenant.account_sid, tenant.parent_account_sid
        answered = callback_params(one_call(rng, SimTenant(sid, parent, ANSWERED), now))
        busy = callback_params(one_call(rng, SimTenant(sid, parent, BUSY), now))
        async with httpx.AsyncClient() as client:
            for params in answered + busy:
                response = await post_signed(client, url, tenant, params)
                assert response.status_code == 204, response.text
            forged = dict(answered[0], CallSid="CA" + "0" * 32)
            response = await client.post(url, data=forged, headers={"X-Twilio-Signature": "forged"})
            assert response.status_code == 403

        reader = open_lake(settings, read_only=True)
        try:

            async def health() -> list[tuple[Any, ...]]:
                return reader.sql(
                    "SELECT account_sid, direction_group, sum(attempts), sum(answered) "
                    "FROM health_minute WHERE account_sid <> 'ISV' GROUP BY ALL"
                ).fetchall()

            rows = await eventually(health, lambda rows: bool(rows) and rows[0][2] == 2)
        finally:
            reader.close()
        assert rows == [(tenant.account_sid, "outbound", 2, 1)]
        assert pipeline.stages[-1].task is not None
        assert not pipeline.stages[-1].task.done()
    finally:
        await pipeline.stop()

    published = await read_topic(kafka_bootstrap, namespace, topics.CALL_STATUS)
    expected_ids = {f"{p['CallSid']}:{p['SequenceNumber']}" for p in answered + busy}
    assert sorted(e.id for e in published) == sorted(expected_ids)
