"""Running the receiver on loopback for a test, and the accounts the tests use."""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from ingest.app import Receiver, create_app
from ingest.server import HttpServerStage
from ingest.tenant_source import TenantSource
from ingest.tenants import Tenant, TenantRegistry
from tests.conftest import KAFKA_SCRIPT, start_kafka_script
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.settings import Settings
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
