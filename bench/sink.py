"""Call facts into DuckLake through the sink's write path, against a plain DuckDB INSERT.

    .venv/bin/python -m bench.sink [--rows 1000000] [--batch-rows 20000] [--sample 20000]

Both sides start from the same Arrow table of synthetic call facts (one month, 1,000
subaccounts, in time order, 2 % not yet rated):

- sink: the table is cut into batches and each batch goes through the sink's own write path
  (:func:`warehouse.sink.write_batches`: an upsert per batch keyed by call SID, highest version
  wins, the lookup bounded by the batch's time window, one DuckLake commit per batch) into a
  migrated lake on a SQLite catalog;
- baseline: one ``INSERT INTO calls SELECT * FROM arrow_table`` into a plain DuckDB file with
  the same table.

It reports rows/s for both and their ratio, the time of ``billing_monthly`` for the month over
the lake (on a read-only connection of its own, as an analyst's), and, separately, the rate at
which the sink decodes envelopes into rows (JSON to Arrow, on a sample), which comes before the
write path in production.
"""

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.settings import Settings
from voicepulse.types import Record
from warehouse.lake import open_lake
from warehouse.setup import build_sink
from warehouse.sink import WarehouseSink, lake_schemas, write_batches
from warehouse.tables import BY_TYPE

CALLS = BY_TYPE["call-fact"]
MONTH_START = datetime(2026, 10, 1)

_FACTS = """
SELECT
    'CA' || lpad(to_hex(i), 32, '0') AS call_sid,
    1 + (i % 3) AS version,
    'AC' || lpad(to_hex(i % 1000), 32, '0') AS account_sid,
    'AC' || repeat('f', 32) AS parent_account_sid,
    TIMESTAMP '2026-10-01' + to_microseconds((i::HUGEINT * {span_us} // {rows})::BIGINT)
        AS call_time,
    CASE WHEN i % 10 < 7 THEN 'completed' WHEN i % 10 < 9 THEN 'busy' ELSE 'no-answer' END
        AS status,
    true AS terminal,
    i % 10 < 7 AS answered,
    CASE WHEN i % 5 = 0 THEN 'inbound' ELSE 'outbound-api' END AS direction,
    CASE WHEN i % 5 = 0 THEN 'inbound' ELSE 'outbound' END AS direction_group,
    '+1555' || lpad((i % 100000)::VARCHAR, 7, '0') AS from_number,
    '+1666' || lpad((i % 977)::VARCHAR, 7, '0') AS to_number,
    call_time AS created_at,
    CASE WHEN answered THEN call_time + INTERVAL 5 SECOND END AS answered_at,
    call_time + INTERVAL 100 SECOND AS ended_at,
    call_time + INTERVAL 100 SECOND AS last_event_at,
    CASE WHEN answered THEN (i * 7919) % 600 END AS call_duration_s,
    CASE WHEN answered THEN ((i * 7919) % 600 + 59) // 60 END AS billed_minutes,
    (i * 31) % 5000 AS queue_time_ms,
    800 + i % 2000 AS pdd_ms,
    CASE WHEN i % 50 = 0 THEN NULL
         WHEN answered THEN CAST(((i * 7919) % 600 + 59) // 60 * 0.0140 AS DECIMAL(18, 6))
         ELSE CAST(0 AS DECIMAL(18, 6)) END AS cost,
    'USD' AS price_unit,
    CASE WHEN i % 7 = 0 THEN 'sip' ELSE 'carrier' END AS call_type,
    200 AS sip_response_code,
    NULL AS last_sip_response_num,
    'callee' AS disconnected_by,
    NULL AS stir_verstat,
    'none' AS attestation,
    NULL AS answered_by,
    NULL AS parent_call_sid,
    NULL AS trunk_sid,
    'complete' AS insights_state,
    []::VARCHAR[] AS tags,
    false AS closed_by_timeout,
    false AS trunk_cps_rejection,
    false AS late,
    call_time + INTERVAL 2 MINUTE AS received_at,
    call_time - INTERVAL 1 MINUTE AS opened_at,
    false AS merged
FROM range({rows}) AS r(i)
"""


def synthetic_facts(rows: int, schema: pa.Schema) -> pa.Table:
    """``rows`` call facts over October 2026, as the lake's ``calls`` schema."""
    span_us = 31 * 24 * 3600 * 1_000_000 - 1
    with duckdb.connect() as con:
        table = con.sql(_FACTS.format(rows=rows, span_us=span_us)).to_arrow_table()
    return table.select(schema.names).cast(schema)


def run_sink(lake: duckdb.DuckDBPyConnection, facts: pa.Table, batch_rows: int) -> float:
    started = time.perf_counter()
    for offset in range(0, facts.num_rows, batch_rows):
        write_batches(lake, {CALLS: facts.slice(offset, batch_rows)})
    return time.perf_counter() - started


def run_baseline(path: Path, facts: pa.Table, ddl: str) -> float:
    with duckdb.connect(str(path)) as con:
        con.execute(ddl)
        con.register("facts", facts)
        started = time.perf_counter()
        con.execute("INSERT INTO calls SELECT * FROM facts")
        return time.perf_counter() - started


def time_billing(lake: duckdb.DuckDBPyConnection) -> tuple[float, int]:
    started = time.perf_counter()
    rows = lake.sql("SELECT * FROM billing_monthly WHERE month = DATE '2026-10-01'").fetchall()
    return time.perf_counter() - started, len(rows)


def decode_rate(settings: Settings, sample: int) -> float:
    """Envelopes per second through the sink's decode step (JSON -> row -> Arrow)."""
    now = datetime(2026, 10, 1, tzinfo=UTC)
    payloads = [
        Record("voicepulse.calls", 0, i, b"AC", _envelope(i, now).to_json()) for i in range(sample)
    ]

    async def go() -> float:
        bus = InProcessBus()
        await bus.start()
        _, con = build_sink(settings, bus, {})
        try:
            sink_batch = WarehouseSink(con, bus, batch_size=sample + 1, flush_interval_s=1e9)
            started = time.perf_counter()
            await sink_batch.handle(payloads)
            sink_batch._to_arrow()  # the decode stops at the Arrow batch
            return sample / (time.perf_counter() - started)
        finally:
            con.close()

    return asyncio.run(go())


def _envelope(i: int, now: datetime) -> Envelope:
    created = now + timedelta(seconds=i)
    return Envelope(
        id=f"CA{i:032x}:1",
        type="call-fact",
        account_sid=f"AC{i % 1000:032x}",
        parent_account_sid="AC" + "f" * 32,
        source="bench",
        fields={
            "call_sid": f"CA{i:032x}",
            "version": 1,
            "status": "completed",
            "terminal": True,
            "answered": True,
            "direction": "outbound-api",
            "direction_group": "outbound",
            "from": "+15550001111",
            "to": "+15550002222",
            "created_at": created.isoformat(),
            "answered_at": created.isoformat(),
            "ended_at": created.isoformat(),
            "call_duration_s": 61,
            "billed_minutes": 2,
            "cost": "0.0280",
            "price_unit": "USD",
            "tags": [],
        },
        received_at=created.isoformat(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=Settings().sink_batch_size)
    parser.add_argument("--sample", type=int, default=20_000, help="envelopes to decode")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-sink-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "lake", demo=False)
        bus = InProcessBus()
        _, lake = build_sink(settings, bus, {})
        try:
            schema = lake_schemas(lake)[CALLS]
            ddl = lake.sql(
                "SELECT sql FROM duckdb_tables() WHERE table_name = 'calls' "
                "AND database_name = 'lake'"
            ).fetchone()
            assert ddl is not None
            started = time.perf_counter()
            facts = synthetic_facts(args.rows, schema)
            print(
                f"generated {facts.num_rows:,} call facts in {time.perf_counter() - started:.1f} s"
            )

            baseline_s = run_baseline(Path(tmp) / "plain.duckdb", facts, str(ddl[0]))
            sink_s = run_sink(lake, facts, args.batch_rows)
            stored = lake.sql("SELECT count(*) FROM calls").fetchone()
            assert stored == (facts.num_rows,), stored
            # As an analyst would run it: on a connection of their own (all threads).
            with open_lake(settings, read_only=True) as reader:
                billing_s, billing_rows = time_billing(reader)
            files = lake.sql("SELECT count(*) FROM ducklake_list_files('lake', 'calls')").fetchone()
        finally:
            lake.close()
        decoded = decode_rate(Settings(data_dir=Path(tmp) / "decode", demo=False), args.sample)

    sink_rate = args.rows / sink_s
    base_rate = args.rows / baseline_s
    print(f"rows: {args.rows:,}, sink batches of {args.batch_rows:,} rows")
    print(f"sink into DuckLake:          {sink_rate:>12,.0f} rows/s ({sink_s:.1f} s)")
    print(f"plain DuckDB INSERT SELECT:  {base_rate:>12,.0f} rows/s ({baseline_s:.1f} s)")
    print(f"ratio sink / plain:          {sink_rate / base_rate:>12.2f}x")
    print(f"billing_monthly, one month:  {billing_s:>12.2f} s ({billing_rows} lines)")
    print(f"data files of calls:         {files[0] if files else '?':>12}")
    print(f"sink decode (JSON -> Arrow): {decoded:>12,.0f} envelopes/s (sample {args.sample:,})")


if __name__ == "__main__":
    main()
