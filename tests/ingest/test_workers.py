"""``voicepulse serve --workers 2`` as a subprocess, on real HTTP over loopback and real Kafka:
both workers answer on one port, every accepted callback is on the topic, a killed worker is
restarted and its spool drained, SIGTERM and SIGINT drain every worker, ``/metrics`` is the
sum over the workers; and a single receiver drains the spools a run with more workers left."""

import asyncio
import collections
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ingest.app import STATUS_PATH
from ingest.spool import Spool, SpooledRecord
from ingest.tenants import Tenant, TenantRegistry
from tests.conftest import SettingsFactory
from tests.helpers import eventually, free_port, post_signed, read_topic
from tests.ingest.support import (
    OwnKafka,
    kill_process,
    serve_process,
    serving,
    spool_empty,
    status_params,
    wait_ready,
)
from voicepulse import topics
from voicepulse.bus import InProcessBus

_WORKER = "voicepulse-worker"


class Load:
    """Signed status callbacks, each on a fresh connection (so the kernel spreads them over the
    workers); what was answered 204, and by which worker."""

    def __init__(self, url: str, tenants: TenantRegistry) -> None:
        self.url = url
        self.tenants = list(tenants.values())
        self.acknowledged: set[str] = set()
        self.by_worker: collections.Counter[str] = collections.Counter()
        self.failed = 0
        self.stop = asyncio.Event()

    async def send(self, tenant: Tenant, count: int | None) -> None:
        call = "CA" + uuid.uuid4().hex
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            sequence = 0
            while not self.stop.is_set() and (count is None or sequence < count):
                params = status_params(tenant, call, sequence)
                sequence += 1
                try:
                    response = await post_signed(client, self.url, tenant, params)
                except httpx.TransportError:
                    self.failed += 1  # a killed worker's connection: never answered 2xx
                    await asyncio.sleep(0.01)
                    continue
                if response.status_code == 204:
                    self.acknowledged.add(f"{call}:{params['SequenceNumber']}")
                    self.by_worker[response.headers[_WORKER]] += 1

    async def run(self, tasks: int, count: int | None = None) -> None:
        await asyncio.gather(*(self.send(self.tenants[i % 3], count) for i in range(tasks)))


@dataclass
class Workers:
    """``serve --workers 2`` running: its process, its base URL, worker index -> pid at start."""

    process: subprocess.Popen[bytes]
    base: str
    pids: dict[str, int]


@contextlib.asynccontextmanager
async def _two_workers(data_dir: Path, bootstrap: str, namespace: str) -> AsyncIterator[Workers]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"VOICEPULSE_KAFKA_NAMESPACE": namespace}
    process = serve_process(data_dir, port, bootstrap, "--workers", "2", env=env)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await wait_ready(client, base, process)
        yield Workers(process, base, await _worker_pids(base))
    finally:
        kill_process(process)


async def _healthz(base: str) -> tuple[str, int]:
    """Which worker answered ``/healthz`` on a fresh connection, and its pid."""
    async with httpx.AsyncClient(timeout=10) as client:
        value = (await client.get(base + "/healthz")).headers[_WORKER]
    index, _, pid = value.partition("; pid=")
    return index, int(pid)


async def _worker_pids(base: str) -> dict[str, int]:
    """Worker index -> pid, asking on fresh connections until both workers answered."""
    seen: dict[str, int] = {}

    async def probe() -> dict[str, int]:
        for _ in range(20):
            index, pid = await _healthz(base)
            seen[index] = pid
        return dict(seen)

    return await eventually(probe, lambda found: len(found) == 2, timeout_s=30, interval_s=0)


async def _scrape_each_worker(base: str) -> dict[str, str]:
    """``/metrics`` as each worker answers it (fresh connections until both did)."""
    texts: dict[str, str] = {}

    async def probe() -> int:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(base + "/metrics")
        texts[response.headers[_WORKER]] = response.text
        return len(texts)

    await eventually(probe, lambda found: found == 2, timeout_s=30, interval_s=0)
    return texts


def _sample(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[-1])


def _stopped(process: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    process.send_signal(sig)
    return process.wait(timeout=90)


def _log(data_dir: Path) -> str:
    return (data_dir / "serve.log").read_text()


@pytest.mark.kafka
async def test_two_workers_answer_on_one_port_and_publish_each_callback_once(
    kafka_bootstrap: str, namespace: str, tmp_path: Path, demo_tenants: TenantRegistry
) -> None:
    async with _two_workers(tmp_path, kafka_bootstrap, namespace) as serving:
        assert len({*serving.pids.values(), serving.process.pid}) == 3, "two processes of their own"
        load = Load(serving.base + STATUS_PATH, demo_tenants)
        await load.run(tasks=8, count=50)
        assert len(load.acknowledged) == 400
        assert set(load.by_worker) == {"0", "1"}, load.by_worker
        for worker, text in (await _scrape_each_worker(serving.base)).items():
            accepted = 'voicepulse_ingest_requests_total{outcome="accepted",route="status"}'
            assert _sample(text, accepted) == 400, f"worker {worker} answers the sum"
        assert _stopped(serving.process, signal.SIGINT) == 0
    on_topic = collections.Counter(
        e.id for e in await read_topic(kafka_bootstrap, namespace, topics.CALL_STATUS)
    )
    assert set(on_topic) == load.acknowledged
    assert set(on_topic.values()) == {1}, "each callback on the topic exactly once"
    assert "serve: workers stopped, exit codes {0: 0, 1: 0}" in _log(tmp_path)


@pytest.mark.kafka
async def test_a_killed_worker_is_restarted_and_no_accepted_callback_is_lost(
    kafka_bootstrap: str, namespace: str, tmp_path: Path, demo_tenants: TenantRegistry
) -> None:
    async with _two_workers(tmp_path, kafka_bootstrap, namespace) as serving:
        base, pids = serving.base, serving.pids
        load = Load(base + STATUS_PATH, demo_tenants)

        async def chaos() -> None:
            await asyncio.sleep(1.0)
            os.kill(pids["1"], signal.SIGKILL)
            restarted = await eventually(
                lambda: _worker_pids(base), lambda found: found["1"] != pids["1"], timeout_s=60
            )
            assert restarted["0"] == pids["0"]
            before = load.by_worker["1"]
            await eventually(
                lambda: asyncio.sleep(0.1, load.by_worker["1"]), lambda n: n > before + 20
            )
            load.stop.set()

        await asyncio.gather(chaos(), load.run(tasks=8))
        assert _stopped(serving.process, signal.SIGTERM) == 0
    expected = f"serve worker 1 (pid {pids['1']}) was killed by SIGKILL (exit code -9); starting"
    assert expected in _log(tmp_path)
    on_topic = {e.id for e in await read_topic(kafka_bootstrap, namespace, topics.CALL_STATUS)}
    assert load.acknowledged <= on_topic


@pytest.mark.kafka
async def test_spools_of_killed_workers_are_drained_after_their_restart(
    own_kafka: OwnKafka, tmp_path: Path, demo_tenants: TenantRegistry
) -> None:
    namespace = f"w{uuid.uuid4().hex[:8]}."
    await asyncio.to_thread(own_kafka.stop)
    try:
        async with _two_workers(tmp_path, own_kafka.bootstrap, namespace) as serving:
            base, pids = serving.base, serving.pids
            load = Load(base + STATUS_PATH, demo_tenants)
            await load.run(tasks=6, count=10)
            assert len(load.acknowledged) == 60
            assert set(load.by_worker) == {"0", "1"}
            for index in ("0", "1"):
                assert list((tmp_path / "spool" / f"worker-{index}").glob("*.seg")), index
                os.kill(pids[index], signal.SIGKILL)
            await eventually(
                lambda: _worker_pids(base),
                lambda found: not set(found.values()) & set(pids.values()),
                timeout_s=60,
            )
            await asyncio.to_thread(own_kafka.start)
            async with httpx.AsyncClient(timeout=30) as client:
                await spool_empty(client, base, timeout_s=90)
            assert _stopped(serving.process, signal.SIGTERM) == 0
    finally:
        if not own_kafka.running():
            await asyncio.to_thread(own_kafka.start)
    on_topic = {e.id for e in await read_topic(own_kafka.bootstrap, namespace, topics.CALL_STATUS)}
    assert load.acknowledged <= on_topic
    assert not list((tmp_path / "spool").glob("**/*.seg"))


@pytest.mark.kafka
async def test_a_worker_that_cannot_start_stops_the_parent(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    held = Spool(tmp_path / "spool" / "worker-1", max_bytes=1 << 20, segment_bytes=1 << 16)
    held.open()  # another process's spool, as far as the workers can tell
    started = time.monotonic()
    env = {"VOICEPULSE_KAFKA_NAMESPACE": namespace}
    process = serve_process(tmp_path, free_port(), kafka_bootstrap, "--workers", "2", env=env)
    try:
        assert process.wait(timeout=120) == 1
    finally:
        kill_process(process)
        held.close()
    assert time.monotonic() - started < 120
    assert "before serving, 3 times in a row: stopping" in _log(tmp_path)


async def test_one_receiver_drains_the_spools_of_a_run_with_more_workers(
    settings_factory: SettingsFactory, demo_tenants: TenantRegistry
) -> None:
    settings = settings_factory()
    sent = []
    for index in (0, 1, 2):
        spool = Spool(settings.spool_dir / f"worker-{index}", max_bytes=1 << 20, segment_bytes=256)
        spool.open()
        for i in range(5):
            record = SpooledRecord(topics.CALL_STATUS, b"AC1", f"{index}:{i}".encode())
            await spool.append(record)
            sent.append(record.value)
        spool.close()
    async with serving(settings, demo_tenants) as running:
        assert isinstance(running.bus, InProcessBus)
        bus = running.bus
        await eventually(
            lambda: asyncio.sleep(0, len(bus.records(topics.CALL_STATUS))), lambda n: n == 15
        )
        assert sorted(r.value for r in bus.records(topics.CALL_STATUS)) == sorted(sent)
    assert not list(settings.spool_dir.glob("**/*.seg"))
