"""The alert stage's cost per health window against the processors' own, in the same run.

Run: ``python -m bench.alerting [--subaccounts 10000] [--minutes 4] [--rate 0.05]``

1. Draw the traffic model for N subaccounts (every profile in turn) for M minutes, and encode
   every envelope (status callbacks, Call resources, debugger events) as JSON bytes.
2. The processors (the baseline), in memory: the JSON fed as records batch by batch, as a
   consumer does, every health row and call fact built and encoded; at the end stream time
   passes the grace, so every window closes. CPU time measured.
3. The alert stage, in memory, on the health rows the processors published (interim and
   closed, as a consumer of ``voicepulse.health`` reads them): each decoded as the stage
   decodes it, judged with the default rules, every alert change encoded. CPU time measured,
   with the changelog entries the Kafka stage would write built as well.

Reported: each one's CPU time per closed window and rows/s, and the ratio alert / processors
(the goal: under 0.1). Kafka itself (fetching, the transaction) is left out of both, so the
ratio is the evaluation's own cost against the processors'. The machine is shared: CPU time is
the steadier figure.
"""

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from alerting import Evaluator, default_rules
from alerting.stage import closed_row
from alerting.state import series_entries
from processors.engine import EngineConfig
from processors.processor import Output, Processor
from simulator import PROFILES, SimTenant, envelopes, generate
from voicepulse.runtime import tune_gc
from voicepulse.types import Record

START = 1_796_000_400
_TOPIC = {"call-status": "twilio.call-status", "debugger-event": "twilio.debugger"}


def traffic(subaccounts: int, minutes: int, rate: float) -> list[Record]:
    tenants = [
        SimTenant(f"AC{i:032x}", None, PROFILES[i % len(PROFILES)], 5.0, rate)
        for i in range(subaccounts)
    ]
    model = generate(random.Random(1), tenants, START, minutes * 60)
    ordered = sorted(envelopes(model), key=lambda e: str(e.fields.get("timestamp") or ""))
    return [
        Record(_TOPIC.get(e.type, "twilio.calls"), 0, offset, e.key, e.to_json())
        for offset, e in enumerate(ordered)
    ]


def _measure(run: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def processors(records: list[Record], end: int, batch: int = 2000) -> list[Record]:
    """The health rows published, as records of ``voicepulse.health``."""
    processor = Processor(EngineConfig(cps_limit=lambda account: 5.0))
    rows: list[Record] = []

    def publish(out: Output) -> None:
        for envelope in out.facts:
            envelope.to_json()
        for envelope in out.rows:
            rows.append(Record("voicepulse.health", 0, len(rows), envelope.key, envelope.to_json()))

    for first in range(0, len(records), batch):
        out = Output()
        processor.feed(records[first : first + batch], out)
        publish(processor.drain(out))
    processor.tick(end)
    publish(processor.drain(Output()))
    return rows


def alert_stage(rows: list[Record], batch: int = 2000) -> int:
    """The alert changes made, each encoded; the changelog entries built per batch."""
    evaluator = Evaluator(default_rules(), changelog=True)
    made = 0
    for first in range(0, len(rows), batch):
        for record in rows[first : first + batch]:
            row = closed_row(record)
            if row is None:
                continue
            for change in evaluator.add(row.account_sid, row.fields):
                change.to_json()
                made += 1
        for series in evaluator.take_touched():
            series_entries(series)
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subaccounts", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0.05, help="calls a second per subaccount")
    args = parser.parse_args()
    tune_gc()
    records = traffic(args.subaccounts, args.minutes, args.rate)
    end = START + args.minutes * 60 + 4 * 3600 + 600  # past every call timeout and the grace
    p_wall, p_cpu, rows = _measure(lambda: processors(records, end))
    closed = sum(1 for r in rows if b'"closed":true' in r.value)
    a_wall, a_cpu, changes = _measure(lambda: alert_stage(rows))
    print(
        f"{args.subaccounts} subaccounts, {args.minutes} min, {len(records)} events, "
        f"{len(rows)} health rows ({closed} closed), {changes} alert changes"
    )
    for name, wall, cpu in (("processors", p_wall, p_cpu), ("alert stage", a_wall, a_cpu)):
        print(
            f"{name:12s} CPU {cpu:7.2f} s ({cpu / closed * 1e6:8.1f} us per closed window), "
            f"wall {wall:7.2f} s, {len(rows) / cpu:10,.0f} health rows/s of CPU"
        )
    print(f"alert / processors, CPU per window: {a_cpu / p_cpu:.3f} (goal: under 0.1)")


if __name__ == "__main__":
    main()
