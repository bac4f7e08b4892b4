"""Day-old traffic (a backfill, a replay, a receiver's spool drained after an outage) read by a
processor whose stream time already stands at the wall clock: a call whose callbacks arrive
over several turns is not closed as ``unknown`` on the way, and its last fact version, the one
the warehouse keeps, carries its terminal status (a call closed by the timeout before was
forgotten at once, and its terminal callback started it afresh at version 1, which the
warehouse ignored)."""

import asyncio
import random
import time

import pytest

from ingest.tenants import TenantRegistry
from processors.engine import EngineConfig
from processors.processor import Output, Processor
from simulator import PROFILES, SimTenant, delivery, envelopes, generate
from tests.conftest import SettingsFactory
from tests.helpers import eventually
from tests.processors.kafka_run import processor_process, publish, read_warehouse, sink
from tests.processors.streams import tenants
from voicepulse.bus.kafka import KafkaBus
from voicepulse.types import Record

CONFIG = EngineConfig(grace_s=120, call_timeout_s=600, horizon_s=900)
DAY = 86_400


def _turns(
    processor: Processor, records: list[Record], batch: int, now: int
) -> dict[str, dict[str, object]]:
    """Feed the records ``batch`` at a time, the wall clock ticking before each turn as the
    stages do; the fact the warehouse keeps per call (the highest version; the first of equal
    versions, since an equal version never replaces a stored one)."""
    kept: dict[str, dict[str, object]] = {}
    for start in range(0, len(records), batch):
        out = Output()
        processor.tick(now)
        processor.feed(records[start : start + batch], out)
        processor.drain(out)
        for fact in out.facts:
            sid = str(fact.fields["call_sid"])
            if sid not in kept or int(fact.fields["version"]) > int(str(kept[sid]["version"])):
                kept[sid] = dict(fact.fields)
    return kept


def test_day_old_callbacks_spread_over_turns_reach_their_terminal_status() -> None:
    rng = random.Random(5)
    now = int(time.time())
    profiles = [0, 3, 5]
    traffic = generate(rng, tenants(rng, profiles, rate=0.3), now - DAY, 120)
    delivered = list(delivery(rng, envelopes(traffic), max_delay_s=20, duplicate_rate=0.1))
    records = [
        Record("twilio.call-status", 0, i, None, e.to_json()) for i, e in enumerate(delivered)
    ]
    kept = _turns(Processor(CONFIG), records, batch=7, now=now - 10)
    ended = {call.call_sid: call.terminal for call in traffic.calls if call.terminal is not None}
    assert ended
    wrong = {sid: kept.get(sid, {}).get("status") for sid, status in ended.items()}
    wrong = {sid: got for sid, got in wrong.items() if got != ended[sid]}
    assert not wrong, f"{len(wrong)} of {len(ended)} calls kept the wrong status: {wrong}"
    assert all(kept[sid]["late"] for sid in ended)  # a day late: past every window's grace


@pytest.mark.timeout(200)
async def test_day_old_callbacks_through_rebalances_reach_the_warehouse(
    kafka_bootstrap: str,
    namespace: str,
    demo_tenants: TenantRegistry,
    settings_factory: SettingsFactory,
) -> None:
    """On real Kafka with the wall clock on: day-old callbacks flow (a call's callbacks spread
    over many turns) while a second processor joins the group and then leaves it (two
    rebalances, shards restored from the changelog each time); every call in the warehouse
    ends with its terminal status, none stays ``unknown``."""
    rng = random.Random(6)
    sims = [
        SimTenant(t.account_sid, t.parent_account_sid, PROFILES[i % 2 * 3], t.cps_limit, 0.5)
        for i, t in enumerate(demo_tenants.values())
    ]
    traffic = generate(rng, sims, int(time.time()) - DAY, 60)
    delivered = list(delivery(rng, envelopes(traffic), max_delay_s=20, duplicate_rate=0.1))
    half = len(delivered) // 2
    settings = settings_factory(kafka_bootstrap_servers=kafka_bootstrap)
    clock = {"processor_wall_clock_lag_s": "10"}
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        async with sink(settings, namespace):
            with processor_process(kafka_bootstrap, namespace, "a", settings=clock):
                await publish(bus, delivered[:half], seconds=8)
                with processor_process(kafka_bootstrap, namespace, "b", settings=clock) as second:
                    await publish(bus, delivered[half:], seconds=8)
                    # Stopped, not killed: a killed member's open transaction would hold every
                    # read_committed reader of its partitions back until the broker's
                    # transaction timeout (60 s), as no successor with its id fences it.
                    second.terminate()
                    second.wait(timeout=30)

                async def statuses() -> dict[str, str]:
                    facts = (await asyncio.to_thread(read_warehouse, settings)).facts
                    return {sid: str(fact["status"]) for sid, fact in facts.items()}

                ended = {c.call_sid: c.terminal for c in traffic.calls if c.terminal}
                got = await eventually(statuses, lambda got: got == ended, timeout_s=90)
    finally:
        await bus.stop()
    assert got == ended
