"""Shared fixtures: a real Kafka broker, per-test namespaces, settings and tenants.

Kafka comes from ``KAFKA_BOOTSTRAP_SERVERS`` when set, else from testcontainers when a Docker
engine answers, else from the project's own broker script (scripts/kafka/kafka). When ``CI`` is
set, a test that needs Kafka and cannot get it fails; elsewhere it is skipped with the reason.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from ingest.tenants import TenantRegistry, load_tenants
from voicepulse.settings import Settings, demo_tenants_path

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "scripts" / "kafka" / "kafka"


def _docker_answers() -> bool:
    """True when a Docker engine answers ``/_ping`` on DOCKER_HOST or the default socket."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").partition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port or 2375))
        else:
            return False
        with sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(64)
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply
    except OSError:
        return False


def start_kafka_script(state: Path, *, timeout_s: float) -> str:
    """Start (or restart) the broker of ``scripts/kafka/kafka`` in ``state``; its bootstrap."""
    started = subprocess.run(
        [str(KAFKA_SCRIPT), "start", str(state)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if started.returncode != 0:
        raise RuntimeError(f"scripts/kafka/kafka start failed: {started.stderr.strip()}")
    return started.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def _kafka_from_script() -> Iterator[str]:
    state = Path(tempfile.mkdtemp(prefix="voicepulse-kafka-"))
    try:
        yield start_kafka_script(state, timeout_s=600)
    finally:
        subprocess.run([str(KAFKA_SCRIPT), "stop", str(state)], check=False, timeout=60)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address of a real Kafka broker for this test session."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    try:
        if _docker_answers():
            from testcontainers.kafka import KafkaContainer

            with KafkaContainer().with_kraft() as kafka:
                yield kafka.get_bootstrap_server()
            return
        with _kafka_from_script() as bootstrap:
            yield bootstrap
    except Exception as exc:  # noqa: BLE001 - translated into fail (CI) or skip (elsewhere)
        message = f"no Kafka broker for this test: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def namespace() -> str:
    """A prefix that gives each test its own Kafka topics and consumer groups."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(scope="session")
def demo_tenants() -> TenantRegistry:
    return load_tenants(demo_tenants_path())


class SettingsFactory(Protocol):
    def __call__(self, **overrides: object) -> Settings: ...


@pytest.fixture
def settings_factory(tmp_path: Path) -> SettingsFactory:
    """Settings for one test: its own data directory, a free port, the demo tenants."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": tmp_path / "data",
            "port": 0,
            "tenants_file": demo_tenants_path(),
            "demo": False,
            "sink_flush_interval_s": 0.2,
            "alert_metrics_port": None,  # a fixed port: tests that want it set their own
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make
