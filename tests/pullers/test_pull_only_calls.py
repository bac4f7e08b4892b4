"""An ISV with no status callbacks at all: the calls its Twilio REST APIs describe (Call
resources, Insights summaries) are finished calls, with their ``calls`` rows, billed, and
reconciled against Twilio's own usage records. Real parts: the fake Twilio on loopback, Kafka,
the processors, the sink and DuckLake."""

import asyncio
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingest.pollers import pull_once
from simulator.fake_twilio import FakeState, generate_state, serve_fake_twilio
from simulator.fake_twilio.command import tenants_toml
from simulator.fake_twilio.resources import usage_day
from simulator.fake_twilio.state import FakeClock
from tests.helpers import eventually
from tests.pullers.conftest import PullSettings
from voicepulse.pipeline import Role, build_pipeline
from voicepulse.settings import Settings
from warehouse.lake import open_lake

pytestmark = pytest.mark.kafka


def _read(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    con = open_lake(settings, read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def _fake_bill(state: FakeState) -> tuple[dict[tuple[str, date], int], set[tuple[str, date]]]:
    """Billed minutes per subaccount and day as the fake's calls say, and the settled days
    (every ended call of the day rated)."""
    now = state.clock.now()
    minutes: dict[tuple[str, date], int] = defaultdict(int)
    unsettled = set()
    for call in state.calls_by_sid.values():
        phase = call.phase(now)
        if not phase.ended:
            continue
        key = (call.account_sid, usage_day(call))
        minutes[key] += call.billed_minutes
        if not phase.priced:
            unsettled.add(key)
    return dict(minutes), set(minutes) - unsettled


async def test_calls_known_only_from_the_rest_apis_are_finished_billed_and_reconciled(
    tmp_path: Path, pull_settings: PullSettings, namespace: str
) -> None:
    # An hour behind the wall clock, so that no pulled time is ahead of it.
    state = generate_state(
        subaccounts=2, calls=60, days=1, seed=43, clock=FakeClock(-timedelta(hours=1))
    )
    state.clock.freeze()
    tenants = tmp_path / "fake.toml"
    tenants.write_text(tenants_toml(state), encoding="utf-8")
    now = state.clock.now()
    ended = {
        c.sid: (c.final_status, c.duration_s)
        for c in state.calls_by_sid.values()
        if c.phase(now).ended
    }
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(state, base, tenants_file=tenants, pull_discover_subaccounts=False)
        puller = await pull_once(settings, None, namespace=namespace)
    assert puller.failing() == []
    pipeline = build_pipeline(settings, {Role.PROCESS, Role.SINK}, namespace=namespace)
    await pipeline.start()
    try:

        async def calls() -> list[tuple[Any, ...]]:
            return await asyncio.to_thread(
                _read, settings, "SELECT call_sid, status, call_duration_s FROM calls"
            )

        rows = await eventually(calls, lambda r: len(r) >= len(ended), timeout_s=90)
        billed = await asyncio.to_thread(
            _read,
            settings,
            "SELECT account_sid, day, sum(billed_minutes), sum(cost) FROM billing_daily "
            "WHERE scope = 'subaccount' GROUP BY ALL",
        )
        reconciled = await asyncio.to_thread(
            _read, settings, "SELECT account_sid, day, status FROM usage_reconciliation"
        )
    finally:
        await pipeline.stop()
    assert {sid: (status, duration) for sid, status, duration in rows} == ended
    minutes, settled = _fake_bill(state)
    assert {(a, d): int(m) for a, d, m, _ in billed if m} == {k: m for k, m in minutes.items() if m}
    priced: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    for call in state.calls_by_sid.values():
        if call.phase(now).priced:
            priced[(call.account_sid, usage_day(call))] += call.price
    assert all(cost == priced[(a, d)] for a, d, _, cost in billed if (a, d) in settled)
    assert settled
    statuses = {(a, d): status for a, d, status in reconciled}
    assert {k: statuses.get(k) for k in settled} == dict.fromkeys(settled, "ok")
