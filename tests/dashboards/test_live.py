"""The dashboard reads the lake while the sink writes: what the sink commits after the
dashboard opened its read-only connection shows on the next request (cache off)."""

import asyncio
from datetime import UTC, datetime

import httpx

from dashboards.app import create_app
from dashboards.reader import Reader
from dashboards.tokens import TokenStore
from ingest.server import HttpServerStage
from ingest.tenants import TenantRegistry
from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import health, records
from voicepulse.bus import InProcessBus
from warehouse.setup import build_sink


async def test_new_sink_batches_show_without_a_restart(
    settings_factory: SettingsFactory, demo_tenants: TenantRegistry
) -> None:
    settings = settings_factory()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    account = next(iter(demo_tenants))
    bus = InProcessBus()
    await bus.start()
    sink, con = build_sink(settings, bus, demo_tenants)
    store = TokenStore(settings.data_dir / "tokens.sqlite")
    token, _ = store.create("ops", operator=True)
    app = create_app(settings, tokens=store, reader=Reader(settings, ttl_s=0), clock=lambda: now)
    stage = HttpServerStage("dashboard", app, "127.0.0.1", 0)
    await stage.start()
    try:
        url = f"http://127.0.0.1:{stage.port}/api/v1/fleet?q={account}"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers) as client:

            async def calls_today() -> int:
                answer = await client.get(url)
                assert answer.status_code == 200, answer.text
                return int(answer.json()["items"][0]["calls_today"])

            assert await calls_today() == 0
            for minute, attempts in ((-3, 4), (-2, 5)):
                window = health(account, minute, attempts, attempts, {"10": 1}, t0=now)
                await sink.handle(records([window], start=minute + 10))
                await sink.flush()
                await asyncio.sleep(0)
            assert await calls_today() == 9
    finally:
        await stage.stop()
        con.close()
        store.close()
        await bus.stop()
