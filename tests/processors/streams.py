"""Helpers for the processor tests: tenants of every profile, streaming rows, comparisons."""

import random
import zlib
from typing import Any

from processors.engine import EngineConfig
from processors.isv import IsvAggregator
from processors.processor import Output, Processor
from simulator import PROFILES, SimTenant
from voicepulse.envelope import Envelope

PARENT = "AC" + "f" * 32
COMPARED_INTS = (
    "attempts",
    "completed",
    "busy",
    "no_answer",
    "failed",
    "canceled",
    "answered",
    "unknown",
    "talk_seconds",
    "short_calls",
    "calls_created",
    "cps_peak",
    "queue_time_count",
    "queue_time_sum_ms",
    "queue_time_max_ms",
    "trunk_cps_rejections",
    "late_events",
)
COMPARED_MAPS = ("from_numbers", "attestation", "debugger_errors", "debugger_warnings")


def tenants(rng: random.Random, profiles: list[int], rate: float = 0.5) -> list[SimTenant]:
    return [
        SimTenant(
            "AC" + f"{rng.getrandbits(128):032x}",
            PARENT,
            PROFILES[index],
            cps_limit=1.0,
            calls_per_second=rate,
        )
        for index in profiles
    ]


def partition_of(envelope: Envelope, partitions: int) -> int:
    return zlib.crc32(envelope.account_sid.encode()) % partitions


def stream(
    config: EngineConfig,
    deliveries: list[Envelope],
    partitions: int = 2,
    batch: int = 50,
    emitted: list[Envelope] | None = None,
) -> tuple[dict[tuple[str, str, str], dict[str, Any]], list[dict[str, Any]]]:
    """Run envelopes through the processor in batches; the latest row per window id (ISV
    rows from the aggregator over the subaccount rows) and every call-fact version emitted.
    ``emitted`` collects every fact and row envelope, in order, as the sink would get them."""
    processor = Processor(config)
    isv = IsvAggregator(cps_limit=1.0)
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    facts: list[dict[str, Any]] = []

    def take(out: Output) -> None:
        for row in out.rows:
            rows[(row.account_sid, row.fields["direction_group"], row.fields["window_start"])] = (
                dict(row.fields)
            )
            key = isv.add(row)
            if key is not None:
                merged = isv.row(key)
                if emitted is not None:
                    emitted.append(merged)
                rows[("ISV", merged.fields["direction_group"], merged.fields["window_start"])] = (
                    dict(merged.fields)
                )
        facts.extend(dict(fact.fields, account_sid=fact.account_sid) for fact in out.facts)
        if emitted is not None:
            emitted.extend((*out.facts, *out.rows))

    for start in range(0, len(deliveries), batch):
        out = Output()
        for envelope in deliveries[start : start + batch]:
            processor.shard(partition_of(envelope, partitions)).apply(envelope)
        take(processor.drain(out))
    for p in range(partitions):
        processor.shard(p).advance(2**40)
    take(processor.drain(Output()))
    return rows, facts


def normalise(row: dict[str, Any] | None) -> dict[str, Any]:
    """The compared metrics of a row (streaming, SQL or truth); None is an empty window."""
    if row is None:
        return {name: 0 for name in COMPARED_INTS} | {
            "queue_time_max_ms": None,
            **{name: {} for name in COMPARED_MAPS},
            "cps_per_second": [0] * 60,
        }
    out = {name: row[name] for name in COMPARED_INTS}
    out.update({name: {k: v for k, v in row[name].items() if v} for name in COMPARED_MAPS})
    out["cps_per_second"] = list(row["cps_per_second"])
    return out


def within_alpha(estimate: float | None, exact: int | None, alpha: float = 0.01) -> bool:
    if exact is None or estimate is None:
        return estimate is None and exact is None
    return abs(estimate - exact) <= alpha * exact + 1e-9
