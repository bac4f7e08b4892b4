"""Fixtures for the dashboard tests: one lake filled by the real sink, the dashboard on real
uvicorn over loopback (in a thread of its own, so that synchronous clients and the browser can
call it), and tokens of each kind."""

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.routing import BaseRoute

from dashboards.app import create_app, tokens_path
from dashboards.reader import Reader
from dashboards.tokens import TokenStore
from ingest.server import HttpServerStage
from ingest.tenants import TenantRegistry, load_tenants
from tests.dashboards.lakedata import fill_lake
from voicepulse.settings import Settings, demo_tenants_path


@dataclass(frozen=True)
class Dashboard:
    url: str
    settings: Settings
    now: datetime
    tenants: TenantRegistry
    operator: str
    tenant: str  # a token for the first demo subaccount only
    tenant_sid: str
    routes: list[BaseRoute]

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


class ServerThread:
    """An HttpServerStage on its own event loop in a thread."""

    def __init__(self, stage: HttpServerStage) -> None:
        self.stage = stage
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> int:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.stage.start(), self._loop).result(30)
        return self.stage.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.stage.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    data = tmp_path_factory.mktemp("dashboard") / "data"
    settings = Settings(data_dir=Path(data), tenants_file=demo_tenants_path(), demo=False)
    tenants = load_tenants(demo_tenants_path())
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    fill_lake(settings, tenants, now)
    store = TokenStore(tokens_path(settings))
    first = next(iter(tenants))
    operator, _ = store.create("ops", operator=True)
    tenant, _ = store.create("first tenant", accounts=(first,))
    app = create_app(
        settings,
        tokens=store,
        reader=Reader(settings, ttl_s=0),
        clock=lambda: now + timedelta(seconds=30),
    )
    server = ServerThread(HttpServerStage("dashboard", app, "127.0.0.1", 0))
    port = server.start()
    try:
        yield Dashboard(
            f"http://127.0.0.1:{port}", settings, now, tenants, operator, tenant, first, app.routes
        )
    finally:
        server.stop()
        store.close()
