"""Real receivers on loopback for the notifier tests: Alertmanager, and a webhook receiver."""

import asyncio
import hashlib
import hmac
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.server import HttpServerStage
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_SCRIPT = ROOT / "scripts" / "alertmanager" / "alertmanager"
WEBHOOK_SECRET = "webhook-test-secret"


@dataclass
class Alertmanager:
    """One real Alertmanager (scripts/alertmanager/alertmanager) on a fixed loopback port."""

    state: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {"ALERTMANAGER_PORT": str(self.port), "PATH": "/usr/bin:/bin"}
        subprocess.run(
            [str(ALERTMANAGER_SCRIPT), "start", str(self.state)],
            check=True, capture_output=True, env=env, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run([str(ALERTMANAGER_SCRIPT), "stop", str(self.state)], check=True, timeout=60)

    def wipe(self) -> None:
        """Stop it and forget every alert it held (as a fresh Alertmanager would)."""
        self.stop()
        shutil.rmtree(self.state / "data", ignore_errors=True)

    async def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The active alerts whose labels include ``labels``."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.url}/api/v2/alerts")
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return [a for a in found if labels.items() <= a["labels"].items()]


@pytest.fixture
def alertmanager_at(tmp_path: Path) -> Iterator[Any]:
    """Make an Alertmanager (not started) on a free port; every one is stopped at the end."""
    if not Path("/usr/bin/prometheus-alertmanager").exists():
        pytest.fail("prometheus-alertmanager is not installed (scripts/test installs it)")
    made: list[Alertmanager] = []

    def make() -> Alertmanager:
        manager = Alertmanager(tmp_path / f"alertmanager-{len(made)}", free_port())
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.stop()


@pytest.fixture
def alertmanager(alertmanager_at: Any) -> Alertmanager:
    manager: Alertmanager = alertmanager_at()
    manager.start()
    return manager


@dataclass
class WebhookReceiver:
    """Checks every request's signature; counts deliveries per idempotency key."""

    url: str = ""
    requests: int = 0
    bad_signatures: int = 0
    deliveries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_next: int = 0  # answer 503 to this many requests
    retry_after: str | None = None  # with this Retry-After
    times: list[float] = field(default_factory=list)  # when each request came (monotonic)
    refuse: set[str] = field(default_factory=set)  # idempotency keys answered 400
    delay_s: float = 0.0  # how long each delivery takes

    async def receive(self, request: Request) -> Response:
        self.requests += 1
        self.times.append(time.monotonic())
        body = await request.body()
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-voicepulse-signature", ""), expected):
            self.bad_signatures += 1
            return Response(status_code=401)
        if self.fail_next > 0:
            self.fail_next -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return Response(status_code=503, headers=headers)
        key = request.headers["idempotency-key"]
        if key in self.refuse:
            return Response("unknown rule", status_code=400)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.deliveries.setdefault(key, []).append(orjson.loads(body))
        return Response(status_code=204)


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    server = HttpServerStage("webhook", Starlette(routes=[Route("/hook", receiver.receive,
                                                                methods=["POST"])]),
                             "127.0.0.1", 0)  # fmt: skip
    await server.start()
    receiver.url = f"http://127.0.0.1:{server.port}/hook"
    try:
        yield receiver
    finally:
        await server.stop()
