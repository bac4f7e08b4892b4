"""Running the receiver on loopback for a test, and the accounts the tests use."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ingest.app import Receiver, create_app
from ingest.server import HttpServerStage
from ingest.tenant_source import TenantSource
from ingest.tenants import Tenant, TenantRegistry
from tests.conftest import KAFKA_SCRIPT, start_kafka_script
from tests.helpers import eventually
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.settings import Settings, demo_tenants_path
from voicepulse.types import Bus

SUB = "AC" + "1" * 32
OTHER = "AC" + "3" * 32
PARENT = "AC" + "9" * 32
SUB_TOKEN = "subaccount-token-0001"
NEW_TOKEN = "subaccount-token-0002"
OTHER_TOKEN = "other-token-0003"
PARENT_TOKEN = "parent-token-0009"

STATUS = {
    "AccountSid": SUB,
    "CallSid": "CA" + "a" * 32,
    "CallStatus": "completed",
    "Direction": "outbound-api",
    "From": "+14155550100",
    "To": "+16285550100",
    "ApiVersion": "2010-04-01",
    "SequenceNumber": "3",
    "Timestamp": "Tue, 31 Aug 2010 20:36:29 +0000",
    "CallDuration": "42",
}


def registry(*sub_tokens: str) -> TenantRegistry:
    tokens = sub_tokens or (SUB_TOKEN, NEW_TOKEN)
    return TenantRegistry(
        {
            SUB: Tenant(SUB, "sub", PARENT, 1.0, tuple(SecretStr(t) for t in tokens)),
            OTHER: Tenant(OTHER, "other", PARENT, 2.0, (SecretStr(OTHER_TOKEN),)),
            PARENT: Tenant(PARENT, "parent", None, 1.0, (SecretStr(PARENT_TOKEN),)),
        }
    )


@dataclass
class Running:
    """A receiver serving on loopback."""

    bus: Bus
    server: HttpServerStage
    receiver: Receiver

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def published(self, topic: str) -> list[Envelope]:
        assert isinstance(self.bus, InProcessBus)
        return [Envelope.from_json(r.value) for r in self.bus.records(topic)]


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, tenants: TenantSource | TenantRegistry, bus: Bus | None = None
) -> AsyncIterator[Running]:
    """The receiver app under uvicorn on a free loopback port, over ``bus`` (default in-process)."""
    bus = bus or InProcessBus()
    if isinstance(tenants, TenantSource):
        source = tenants
    else:
        source = TenantSource(tenants, shared_keys=settings.webhook_shared_keys)
    await bus.start()
    app = create_app(settings, bus, source)
    server = HttpServerStage("serve", app, "127.0.0.1", 0)
    await server.start()
    try:
        yield Running(bus, server, app.state.receiver)
    finally:
        await server.stop()
        await bus.stop()


class OwnKafka:
    """A Kafka broker of a test's own (scripts/kafka/kafka in a temporary directory), which the
    test may stop and start: it keeps its data and its port across restarts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.bootstrap = ""

    def start(self) -> str:
        self.bootstrap = start_kafka_script(self.directory, timeout_s=300)
        return self.bootstrap

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SCRIPT), "stop", str(self.directory)], check=True, timeout=120)

    def running(self) -> bool:
        status = [str(KAFKA_SCRIPT), "status", str(self.directory)]
        return subprocess.run(status, capture_output=True, check=False).returncode == 0


@contextlib.contextmanager
def own_kafka_broker() -> Iterator[OwnKafka]:
    """Start a broker; fail in CI, skip elsewhere, when none can be started."""
    directory = Path(tempfile.mkdtemp(prefix="voicepulse-own-kafka-"))
    kafka = OwnKafka(directory)
    try:
        try:
            kafka.start()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            message = f"cannot start a Kafka broker of the test's own: {exc}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        yield kafka
    finally:
        subprocess.run([str(KAFKA_SCRIPT), "stop", str(directory)], check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


def first_occurrences(envelopes: Iterable[Envelope]) -> dict[str, list[str]]:
    """Envelope ids per subaccount in the order of their first appearance (a duplicate, which
    at-least-once delivery allows, does not count twice)."""
    order: dict[str, list[str]] = {}
    seen: set[str] = set()
    for envelope in envelopes:
        if envelope.id not in seen:
            seen.add(envelope.id)
            order.setdefault(envelope.account_sid, []).append(envelope.id)
    return order


def serve_process(
    data_dir: Path, port: int, bootstrap: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``voicepulse serve [args]`` in a process of its own, with a 1 s publish deadline; its log
    goes to ``data_dir/serve.log``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, VOICEPULSE_KAFKA_PUBLISH_TIMEOUT_S="1") | (env or {})
    environment.pop("VOICEPULSE_CONFIG", None)
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
        *args,
    ]
    with (data_dir / "serve.log").open("ab") as log:
        return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=log)


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (its ``serve --workers`` workers, among others)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """Kill the receiver's process and its workers if it still runs (a test that failed half
    way)."""
    if process.poll() is None:
        for child in child_pids(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        process.kill()
        process.wait()


async def wait_ready(
    client: httpx.AsyncClient, base: str, process: subprocess.Popen[bytes]
) -> None:
    """Wait until the receiver answers ``/readyz`` with 200 (fail if its process exits)."""

    async def probe() -> int:
        if process.poll() is not None:
            raise AssertionError(f"voicepulse serve exited with {process.returncode}")
        try:
            return (await client.get(base + "/readyz")).status_code
        except httpx.TransportError:
            return 0

    await eventually(probe, lambda code: code == 200, timeout_s=60)


async def spool_empty(client: httpx.AsyncClient, base: str, *, timeout_s: float) -> None:
    """Wait until the receiver's /metrics says its spool holds no record."""

    async def spool_left() -> str:
        text = (await client.get(base + "/metrics")).text
        return next(
            line
            for line in text.splitlines()
            if line.startswith("voicepulse_ingest_spool_records ")
        )

    await eventually(spool_left, lambda line: line.endswith(" 0.0"), timeout_s=timeout_s)


def status_params(tenant: Tenant, call: str, sequence: int) -> dict[str, str]:
    """A status callback of ``call`` (its envelope id: ``<call>:<sequence>``)."""
    return {
        "AccountSid": tenant.account_sid,
        "CallSid": call,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "From": "+14155550100",
        "To": "+16285550100",
        "SequenceNumber": str(sequence),
    }
