"""The receiver killed with SIGKILL under load (``voicepulse serve`` as a subprocess), with
Kafka down so that the spool holds events: every event that got a 2xx is on the topic or in
the spool, and is on the topic once a restarted receiver has drained the spool."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from ingest.app import STATUS_PATH
from ingest.spool import Spool
from ingest.tenants import Tenant, TenantRegistry
from tests.helpers import eventually, free_port, post_signed, read_topic
from tests.ingest.support import OwnKafka
from voicepulse import topics
from voicepulse.settings import demo_tenants_path

pytestmark = pytest.mark.kafka


async def _spool_empty(client: httpx.AsyncClient, base: str, *, timeout_s: float) -> None:
    """Wait until the receiver's /metrics says its spool holds no record."""

    async def spool_left() -> str:
        text = (await client.get(base + "/metrics")).text
        return next(
            line
            for line in text.splitlines()
            if line.startswith("voicepulse_ingest_spool_records ")
        )

    await eventually(spool_left, lambda line: line.endswith(" 0.0"), timeout_s=timeout_s)


def _serve(data_dir: Path, port: int, bootstrap: str) -> subprocess.Popen[bytes]:
    """``voicepulse serve`` in a process of its own; its log goes to ``data_dir/serve.log``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, VOICEPULSE_KAFKA_PUBLISH_TIMEOUT_S="1")
    env.pop("VOICEPULSE_CONFIG", None)
    command = [
        sys.executable,
        "-m",
        "voicepulse.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--tenants-file",
        str(demo_tenants_path()),
        "--kafka-bootstrap-servers",
        bootstrap,
    ]
    with (data_dir / "serve.log").open("ab") as log:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the receiver's process if it still runs (a test that failed half way)."""
    if process.poll() is None:
        process.kill()
        process.wait()


async def _ready(client: httpx.AsyncClient, base: str, process: subprocess.Popen[bytes]) -> None:
    async def probe() -> int:
        if process.poll() is not None:
            raise AssertionError(f"voicepulse serve exited with {process.returncode}")
        try:
            return (await client.get(base + "/readyz")).status_code
        except httpx.TransportError:
            return 0

    await eventually(probe, lambda code: code == 200, timeout_s=60)


def _callback(tenant: Tenant, call: str, sequence: int) -> dict[str, str]:
    return {
        "AccountSid": tenant.account_sid,
        "CallSid": call,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "From": "+14155550100",
        "To": "+16285550100",
        "SequenceNumber": str(sequence),
    }


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
    process = _serve(tmp_path, port, own_kafka.bootstrap)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await _ready(client, base, process)

            async def load(tenant: Tenant) -> None:
                call = "CA" + uuid.uuid4().hex
                for sequence in range(10_000):
                    try:
                        response = await post_signed(
                            client, url, tenant, _callback(tenant, call, sequence)
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

        process = _serve(tmp_path, port, own_kafka.bootstrap)
        async with httpx.AsyncClient(timeout=30) as client:
            await _ready(client, base, process)
            await _spool_empty(client, base, timeout_s=60)
        drained = {e.id for e in await read_topic(own_kafka.bootstrap, "", topics.CALL_STATUS)}
        assert acknowledged <= drained
        assert spooled <= drained
        assert not list((tmp_path / "spool").glob("*.seg"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        _kill(process)


async def test_receiver_starts_and_spools_while_kafka_is_down(
    own_kafka: OwnKafka, tmp_path: Path, demo_tenants: TenantRegistry
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tenant = next(iter(demo_tenants.values()))
    call = "CA" + uuid.uuid4().hex
    await asyncio.to_thread(own_kafka.stop)
    process = _serve(tmp_path, port, own_kafka.bootstrap)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await _ready(client, base, process)
            for sequence in range(30):
                params = _callback(tenant, call, sequence)
                response = await post_signed(client, base + STATUS_PATH, tenant, params)
                assert response.status_code == 204
            metrics = (await client.get(base + "/metrics")).text
            assert "voicepulse_ingest_spool_records 30.0" in metrics
            assert "voicepulse_ingest_bus_up 0.0" in metrics
            await asyncio.to_thread(own_kafka.start)
            await _spool_empty(client, base, timeout_s=90)
        on_topic = [
            e.id
            for e in await read_topic(own_kafka.bootstrap, "", topics.CALL_STATUS)
            if e.id.startswith(call)
        ]
        assert on_topic == [f"{call}:{i}" for i in range(30)]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        _kill(process)
        if not own_kafka.running():
            await asyncio.to_thread(own_kafka.start)
