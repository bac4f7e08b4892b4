"""The receiver killed with SIGKILL under load (``voicepulse serve`` as a subprocess), with
Kafka down so that the spool holds events: every event that got a 2xx is on the topic or in
the spool, and is on the topic once a restarted receiver has drained the spool."""

import asyncio
import signal
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from ingest.app import STATUS_PATH
from ingest.spool import Spool
from ingest.tenants import Tenant, TenantRegistry
from tests.helpers import free_port, post_signed, read_topic
from tests.ingest.support import (
    OwnKafka,
    kill_process,
    serve_process,
    spool_empty,
    status_params,
    wait_ready,
)
from voicepulse import topics

pytestmark = pytest.mark.kafka


def _spooled_ids(spool_dir: Path) -> set[str]:
    spool = Spool(spool_dir, max_bytes=1 << 40, segment_bytes=1 << 30)
    spool.open()
    try:
        records = [r for path in spool.closed_segments() for r in spool.read_segment(path)]
    finally:
        spool.close()
    return {str(orjson.loads(r.value)["id"]) for r in records}


async def test_sigkill_under_load_loses_no_acknowledged_event(
    own_kafka: OwnKafka, tmp_path: Path, demo_tenants: TenantRegistry
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = base + STATUS_PATH
    acknowledged: set[str] = set()
    kafka_down = asyncio.Event()
    process = serve_process(tmp_path, port, own_kafka.bootstrap)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await wait_ready(client, base, process)

            async def load(tenant: Tenant) -> None:
                call = "CA" + uuid.uuid4().hex
                for sequence in range(10_000):
                    try:
                        response = await post_signed(
                            client, url, tenant, status_params(tenant, call, sequence)
                        )
                    except httpx.TransportError:
                        return  # the receiver was killed
                    if response.status_code == 204:
                        acknowledged.add(f"{call}:{sequence}")

            async def chaos() -> None:
                await asyncio.sleep(1.0)
                await asyncio.to_thread(own_kafka.stop)
                kafka_down.set()
                await asyncio.sleep(1.5)
                process.send_signal(signal.SIGKILL)

            await asyncio.gather(chaos(), *(load(t) for t in demo_tenants.values()))
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        await asyncio.to_thread(own_kafka.start)

        spooled = _spooled_ids(tmp_path / "spool")
        on_topic = {e.id for e in await read_topic(own_kafka.bootstrap, "", topics.CALL_STATUS)}
        assert spooled, "the spool should hold events: Kafka was down when the receiver died"
        assert len(acknowledged) > len(spooled) > 0
        assert acknowledged <= on_topic | spooled

        process = serve_process(tmp_path, port, own_kafka.bootstrap)
        async with httpx.AsyncClient(timeout=30) as client:
            await wait_ready(client, base, process)
            await spool_empty(client, base, timeout_s=60)
        drained = {e.id for e in await read_topic(own_kafka.bootstrap, "", topics.CALL_STATUS)}
        assert acknowledged <= drained
        assert spooled <= drained
        assert not list((tmp_path / "spool").glob("*.seg"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        kill_process(process)


async def test_receiver_starts_and_spools_while_kafka_is_down(
    own_kafka: OwnKafka, tmp_path: Path, demo_tenants: TenantRegistry
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tenant = next(iter(demo_tenants.values()))
    call = "CA" + uuid.uuid4().hex
    await asyncio.to_thread(own_kafka.stop)
    process = serve_process(tmp_path, port, own_kafka.bootstrap)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await wait_ready(client, base, process)
            for sequence in range(30):
                params = status_params(tenant, call, sequence)
                response = await post_signed(client, base + STATUS_PATH, tenant, params)
                assert response.status_code == 204
            metrics = (await client.get(base + "/metrics")).text
            assert "voicepulse_ingest_spool_records 30.0" in metrics
            assert "voicepulse_ingest_bus_up 0.0" in metrics
            await asyncio.to_thread(own_kafka.start)
            await spool_empty(client, base, timeout_s=90)
        on_topic = [
            e.id
            for e in await read_topic(own_kafka.bootstrap, "", topics.CALL_STATUS)
            if e.id.startswith(call)
        ]
        assert on_topic == [f"{call}:{i}" for i in range(30)]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        kill_process(process)
        if not own_kafka.running():
            await asyncio.to_thread(own_kafka.start)
