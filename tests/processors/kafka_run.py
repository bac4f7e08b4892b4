"""Helpers for the processor tests on real Kafka: a scenario with its ground truth, the
processor as its own process, the sink into a real DuckLake, and the warehouse compared with
the truth and with an uninterrupted run."""

import asyncio
import contextlib
import dataclasses
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from aiokafka.partitioner import DefaultPartitioner

from ingest.tenants import TenantRegistry
from processors import sketch
from processors.engine import EngineConfig
from processors.isv import IsvAggregator
from processors.processor import Output, Processor
from simulator import (
    PROFILES,
    SimCall,
    SimTenant,
    Traffic,
    delivery,
    envelopes,
    expected_rows,
    generate,
)
from tests.processors.streams import COMPARED_INTS, COMPARED_MAPS, normalise, within_alpha
from voicepulse import topics
from voicepulse.bus.kafka import KafkaBus
from voicepulse.envelope import Envelope
from voicepulse.pipeline import Role, build_pipeline
from voicepulse.settings import Settings
from warehouse.lake import open_lake

TOPIC_OF = {
    "call-status": topics.CALL_STATUS,
    "debugger-event": topics.DEBUGGER,
    "call-resource": topics.TWILIO_CALLS,
    "insights-summary": topics.INSIGHTS,
}
Key = tuple[str, str, datetime]
"""(account_sid or ISV, direction group, window start as naive UTC) of a health row."""

# The call-fact columns compared between the warehouse and an uninterrupted run (the version
# is left out: how many versions a call went through depends on how the topics interleaved).
FACT_COLUMNS = {
    "status": "status",
    "terminal": "terminal",
    "answered": "answered",
    "direction": "direction",
    "direction_group": "direction_group",
    "from": "from_number",
    "to": "to_number",
    "created_at": "created_at",
    "answered_at": "answered_at",
    "ended_at": "ended_at",
    "call_duration_s": "call_duration_s",
    "billed_minutes": "billed_minutes",
    "queue_time_ms": "queue_time_ms",
    "sip_response_code": "sip_response_code",
    "stir_verstat": "stir_verstat",
    "attestation": "attestation",
    "closed_by_timeout": "closed_by_timeout",
    "trunk_cps_rejection": "trunk_cps_rejection",
    "late": "late",
}
_TIMES = {"created_at", "answered_at", "ended_at"}


@dataclasses.dataclass(slots=True)
class Scenario:
    """Generated traffic, its delivery (with duplicates and disorder), its truths."""

    traffic: Traffic
    delivered: list[Envelope]
    rows: dict[Key, dict[str, Any]]  # the generator's exact health rows
    facts: dict[str, dict[str, Any]]  # call facts of an uninterrupted run, by call SID


def scenario(
    tenants: TenantRegistry, seed: int, seconds: int = 90, max_delay_s: int = 30
) -> Scenario:
    """Healthy, short-call and trunk-503 tenants, an hour ago, delayed up to ``max_delay_s``,
    10 % duplicated. Within the grace (120 s) the expected health rows are the generator's; beyond
    it, events are late and the rows are those of an uninterrupted run (which the property
    tests check against the generator when nothing is late)."""
    rng = random.Random(seed)
    profiles = [PROFILES[0], PROFILES[3], dataclasses.replace(PROFILES[5], lost_terminal_rate=0)]
    sims = [
        SimTenant(t.account_sid, t.parent_account_sid, profiles[i % 3], t.cps_limit, 1.0)
        for i, t in enumerate(tenants.values())
    ]
    # Traffic of the last hour: an envelope is stamped received when it is built (now), and an
    # event stamped more than the tolerance after its receipt would count at its receipt.
    traffic = generate(rng, sims, int(time.time()) - seconds - 3600, seconds)
    delivered = list(delivery(rng, envelopes(traffic), max_delay_s=max_delay_s, duplicate_rate=0.1))
    rows, facts = uninterrupted(delivered)
    if max_delay_s < Settings().processor_grace_s:
        truth = expected_rows(traffic, call_timeout_s=Settings().processor_call_timeout_s)
        rows = {(a, g, _naive(s)): row for (a, g, s), row in truth.items()}
    return Scenario(traffic, delivered, rows, facts)


def uninterrupted(
    delivered: Sequence[Envelope], config: EngineConfig | None = None
) -> tuple[dict[Key, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The health rows and the latest call facts of one processor fed everything once, in
    memory, each envelope on the shard of the partition Kafka's default partitioner gives its
    key, in the order written (the order a processor on Kafka applies them, whatever its
    fetches and restarts), with stream time on event time only; ISV rows merged from them."""
    partitions = list(range(Settings().kafka_topic_partitions))
    partitioner = DefaultPartitioner()
    processor = Processor(config or engine_config())
    for envelope in delivered:
        processor.shard(partitioner(envelope.key, partitions, partitions)).apply(envelope)
    out = processor.drain(Output())
    isv = IsvAggregator(cps_limit=Settings().isv_cps_limit)
    rows: dict[Key, dict[str, Any]] = {}
    changed = set()
    for row in out.rows:
        rows[_row_key(row)] = dict(row.fields)
        key = isv.add(row)
        if key is not None:
            changed.add(key)
    for key in changed:
        merged = isv.row(key)
        rows[_row_key(merged)] = dict(merged.fields)
    latest: dict[str, dict[str, Any]] = {}
    for fact in out.facts:
        fields = dict(fact.fields)
        if fields["version"] >= latest.get(fields["call_sid"], {}).get("version", 0):
            latest[fields["call_sid"]] = fields
    return rows, {sid: fact_row(fields) for sid, fields in latest.items()}


def _row_key(row: Envelope) -> Key:
    start = datetime.fromisoformat(str(row.fields["window_start"]))
    return (row.account_sid, str(row.fields["direction_group"]), start.replace(tzinfo=None))


def _naive(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def engine_config() -> EngineConfig:
    """The engine settings `voicepulse process` runs with by default."""
    settings = Settings()
    return EngineConfig(
        grace_s=settings.processor_grace_s,
        call_timeout_s=settings.processor_call_timeout_s,
        horizon_s=settings.processor_horizon_s,
        future_tolerance_s=settings.event_time_tolerance_s,
    )


def fact_row(fields: dict[str, Any]) -> dict[str, Any]:
    """A call fact's compared fields, named and typed as the warehouse's ``calls`` columns."""
    row = {}
    for name, column in FACT_COLUMNS.items():
        value = fields.get(name)
        if name in _TIMES and value is not None:
            value = datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None)
        row[column] = value
    return row


@contextmanager
def processor_process(
    bootstrap: str,
    namespace: str,
    instance: str,
    *,
    stderr: Path | None = None,
    settings: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`voicepulse process` in its own process (killed on exit if still running), its log in
    ``stderr`` if given, with ``settings`` (field names) over the defaults below.

    By default on event time only: on a loaded machine a restarted processor may fall behind
    the wall clock by more than the grace, and then closing windows by the clock would
    (rightly) count events as late. Closing idle windows by the clock is tested in
    test_stage.py.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    environ.update(
        VOICEPULSE_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        VOICEPULSE_KAFKA_NAMESPACE=namespace,
        VOICEPULSE_PROCESSOR_INSTANCE_ID=instance,
        VOICEPULSE_LOG_LEVEL="WARNING",
        VOICEPULSE_PROCESSOR_WALL_CLOCK_LAG_S="1e9",
    )
    environ.update({f"VOICEPULSE_{k.upper()}": v for k, v in (settings or {}).items()})
    with contextlib.ExitStack() as files:
        log = files.enter_context(stderr.open("wb")) if stderr else subprocess.DEVNULL
        proc = subprocess.Popen(
            [sys.executable, "-m", "voicepulse.cli", "process"],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


@asynccontextmanager
async def sink(settings: Settings, namespace: str) -> AsyncIterator[None]:
    """The warehouse sink on Kafka, in this process, writing the DuckLake of ``settings``."""
    pipeline = build_pipeline(settings, {Role.SINK}, namespace=namespace)
    await pipeline.start()
    try:
        yield
    finally:
        await pipeline.stop()


async def publish(bus: KafkaBus, delivered: Sequence[Envelope], seconds: float) -> None:
    """Publish the envelopes to their topics one at a time, spread over ``seconds``, each
    written in a later millisecond than the one before.

    The processor applies a partition's topics merged by write time, ties broken by topic
    (processors/align.py), and :func:`uninterrupted` applies them in the order written: with
    two records of one partition in the same millisecond, the two orders could differ, and
    with them which events are late."""
    pause = seconds / len(delivered)
    for index, envelope in enumerate(delivered):
        await bus.publish(TOPIC_OF[envelope.type], envelope.key, envelope.to_json())
        # The producer stamped the record before it was acknowledged: from the next
        # millisecond on, the next record is stamped later.
        acknowledged_ms = time.time_ns() // 1_000_000
        while time.time_ns() // 1_000_000 <= acknowledged_ms:  # noqa: ASYNC110 (a clock, no event)
            await asyncio.sleep(0.0005)
        if index % 20 == 0:
            await asyncio.sleep(pause * 20)


@dataclasses.dataclass(slots=True)
class Warehouse:
    """What the warehouse holds: health rows by key, call facts by call SID."""

    rows: dict[Key, dict[str, Any]]
    facts: dict[str, dict[str, Any]]


def read_warehouse(settings: Settings) -> Warehouse:
    """The ``health_minute`` and ``calls`` tables, read by an analyst's read-only connection."""
    con = open_lake(settings, read_only=True)
    try:
        return Warehouse(_health(con), _calls(con))
    finally:
        con.close()


def _health(con: duckdb.DuckDBPyConnection) -> dict[Key, dict[str, Any]]:
    columns = [*COMPARED_INTS, *COMPARED_MAPS, "cps_per_second", "queue_time_hist"]
    result = con.sql(
        f"SELECT account_sid, direction_group, window_start, {', '.join(columns)} "
        "FROM health_minute"
    )
    rows = {}
    for record in result.fetchall():
        row = dict(zip(columns, record[3:], strict=True))
        for name in (*COMPARED_MAPS, "queue_time_hist"):
            row[name] = {str(k): v for k, v in (row[name] or {}).items()}
        for percent in (50, 95):
            row[f"queue_time_p{percent}_ms"] = sketch.quantile(
                row["queue_time_hist"], percent, row["queue_time_max_ms"]
            )
        rows[(record[0], record[1], record[2])] = row
    return rows


def _calls(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    columns = list(FACT_COLUMNS.values())
    result = con.sql(
        f"SELECT call_sid, count(*) OVER (PARTITION BY call_sid), {', '.join(columns)} FROM calls"
    )
    facts = {}
    for record in result.fetchall():
        assert record[1] == 1, f"call {record[0]} has {record[1]} rows in the warehouse"
        facts[record[0]] = dict(zip(columns, record[2:], strict=True))
    return facts


def differences(got: Warehouse, want: Scenario) -> list[str]:
    """Where the warehouse differs from the generator's health rows, the generator's call
    outcomes, and the uninterrupted run's call facts (empty when it equals them all)."""
    wrong = [
        f"health {key}: {_diff(got.rows.get(key), want.rows.get(key))}"
        for key in _row_differences(got.rows, want.rows)
    ]
    for sid in sorted(set(got.facts) | set(want.facts)):
        if got.facts.get(sid) != want.facts.get(sid):
            wrong.append(f"call {sid}: {got.facts.get(sid)} != {want.facts.get(sid)}")
    wrong.extend(_outcome_differences(got.facts, want.traffic.calls))
    return wrong


def _diff(got: dict[str, Any] | None, want: dict[str, Any] | None) -> str:
    a, b = normalise(got), normalise(want)
    return ", ".join(f"{name} {a[name]} != {b[name]}" for name in a if a[name] != b[name])


def _row_differences(
    rows: dict[Key, dict[str, Any]], truth: dict[Key, dict[str, Any]]
) -> list[Key]:
    wrong = []
    for key in sorted(set(rows) | set(truth)):
        got, want = rows.get(key), truth.get(key)
        if normalise(got) != normalise(want):
            wrong.append(key)
        elif got is not None and want is not None:
            for name in ("queue_time_p50_ms", "queue_time_p95_ms"):
                if not within_alpha(got[name], want[name]):
                    wrong.append(key)
    return wrong


def _outcome_differences(facts: dict[str, dict[str, Any]], calls: list[SimCall]) -> list[str]:
    wrong = []
    for call in calls:
        fact = facts.get(call.call_sid)
        if call.terminal is None:
            continue
        if fact is None or fact["status"] != call.terminal:
            wrong.append(f"call {call.call_sid} ended {call.terminal}, warehouse: {fact}")
        elif fact["answered"] and fact["call_duration_s"] != call.call_duration:
            wrong.append(f"call {call.call_sid} lasted {call.call_duration} s, warehouse: {fact}")
    return wrong


async def converged(settings: Settings, want: Scenario, timeout_s: float) -> list[str]:
    """Wait until the warehouse equals ``want``; the remaining differences at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        wrong = differences(await asyncio.to_thread(read_warehouse, settings), want)
        if not wrong or time.monotonic() > deadline:
            return wrong
        await asyncio.sleep(2)
