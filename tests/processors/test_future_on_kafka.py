"""On real Kafka and a real DuckLake: one status callback stamped in the year 2100 leaves every
other subaccount's health rows and call facts as they are without it, and reaches its own call
fact flagged ``timestamp_in_future``."""

import asyncio
import dataclasses
import time
from datetime import UTC, datetime

import msgspec
import pytest
from aiokafka.partitioner import DefaultPartitioner

from ingest.tenants import TenantRegistry
from tests.conftest import SettingsFactory
from tests.processors import sources
from tests.processors.kafka_run import (
    Warehouse,
    differences,
    processor_process,
    publish,
    read_warehouse,
    scenario,
    sink,
)
from voicepulse.bus.kafka import KafkaBus
from voicepulse.settings import Settings
from warehouse.lake import open_lake

ODD_CALL = "CA" + "2100" * 8


def _same_partition_as(account: str) -> str:
    """A subaccount SID of no tenant whose records share ``account``'s partition (and shard)."""
    partitions = list(range(Settings().kafka_topic_partitions))
    partition = DefaultPartitioner()
    want = partition(account.encode(), partitions, partitions)
    for index in range(1000):
        candidate = f"AC{index:032x}"
        if candidate != account and partition(candidate.encode(), partitions, partitions) == want:
            return candidate
    raise AssertionError("no subaccount SID on that partition")


@pytest.mark.timeout(180)
async def test_a_callback_from_the_year_2100_blinds_no_other_subaccount(
    kafka_bootstrap: str,
    namespace: str,
    demo_tenants: TenantRegistry,
    settings_factory: SettingsFactory,
) -> None:
    want = scenario(demo_tenants, seed=31, seconds=30)
    start = min(call.created_at for call in want.traffic.calls)
    odd_account = _same_partition_as(want.traffic.calls[0].account_sid)
    # Received when the traffic began (a replay of it): counted then, not in 2100.
    odd = msgspec.structs.replace(
        sources.callback(
            3, "completed", datetime(2100, 1, 1, tzinfo=UTC), call=ODD_CALL, CallDuration="30"
        ),
        account_sid=odd_account,
        received_at=datetime.fromtimestamp(start, UTC).isoformat(timespec="microseconds"),
    )
    others = dataclasses.replace(
        want, rows={k: row for k, row in want.rows.items() if k[0] != "ISV"}
    )
    settings = settings_factory(kafka_bootstrap_servers=kafka_bootstrap)
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        async with sink(settings, namespace):
            with processor_process(kafka_bootstrap, namespace, "0"):
                await publish(bus, [odd, *want.delivered], seconds=8)
                deadline = time.monotonic() + 60
                while True:
                    got = await asyncio.to_thread(read_warehouse, settings)
                    odd_fact = got.facts.pop(ODD_CALL, None)
                    rows = {k: r for k, r in got.rows.items() if k[0] not in ("ISV", odd_account)}
                    wrong = differences(Warehouse(rows, got.facts), others)
                    if (not wrong and odd_fact) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(2)
    finally:
        await bus.stop()
    assert not wrong, f"{len(wrong)} differences from the truth, e.g. {wrong[:3]}"
    assert odd_fact is not None
    con = open_lake(settings, read_only=True)
    try:
        flagged = con.execute(
            "SELECT timestamp_in_future, late, ended_at FROM calls WHERE call_sid = ?", [ODD_CALL]
        ).fetchall()
    finally:
        con.close()
    assert flagged == [(True, False, datetime.fromtimestamp(start, UTC).replace(tzinfo=None))]
