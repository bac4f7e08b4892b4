"""The freshness reader: a process of its own that polls the warehouse read-only, as an analyst
would, and measures when each status callback's ``call_events`` row becomes visible.

    python -m bench.campaign.reader --data-dir WAREHOUSE --out polls.jsonl --summary hist.json

Each poll reads the DuckLake snapshot id; when it moved, the rows inserted since the last one
(``ducklake_table_insertions``: new rows only, a replayed row that changed nothing is not
inserted again) and their ``received_at``, the receiver's clock when the callback arrived. A
row's freshness is the reader's clock at the poll that first sees it minus that time: an
overestimate by at most the poll interval plus the query, never an underestimate. Each poll is
one JSON line (its time, rows, newest ``received_at``, p50/p95/max); at SIGTERM the histogram
of every row's freshness (milliseconds -> rows) goes to ``--summary``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections import Counter
from pathlib import Path

import duckdb
import orjson

from voicepulse.settings import load_settings
from warehouse.lake import open_lake

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _connect(data_dir: Path) -> duckdb.DuckDBPyConnection:
    settings = load_settings(None, data_dir=data_dir)
    while True:
        try:
            con = open_lake(settings, read_only=True)
            con.sql("SELECT count(*) FROM call_events WHERE false").fetchall()
            return con
        except (duckdb.Error, OSError):  # the sink has not made the warehouse yet
            time.sleep(0.5)


def _snapshot(con: duckdb.DuckDBPyConnection) -> int:
    row = con.sql("SELECT id FROM lake.current_snapshot()").fetchone()
    assert row is not None
    return int(row[0])


def _new_rows(con: duckdb.DuckDBPyConnection, after: int, upto: int) -> list[float]:
    """``received_at`` (epoch seconds) of the call_events rows inserted in (after, upto]."""
    rows = con.sql(
        "SELECT epoch_us(received_at) FROM "
        f"ducklake_table_insertions('lake', 'main', 'call_events', {after + 1}, {upto})"
    ).fetchall()
    return [r[0] / 1e6 for r in rows]


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def poll_forever(con: duckdb.DuckDBPyConnection, out: Path, interval_s: float) -> Counter[int]:
    """Poll until SIGTERM; the histogram of freshness in milliseconds."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    hist: Counter[int] = Counter()
    last = _snapshot(con)
    with out.open("ab") as f:
        while not stopping:
            started = time.time()
            current = _snapshot(con)
            received = _new_rows(con, last, current) if current > last else []
            now = time.time()
            last = current
            lags = sorted(now - r for r in received)
            for lag in lags:
                hist[int(lag * 1000)] += 1
            record: dict[str, object] = {"at": round(now, 3), "n": len(lags)}
            if lags:
                record |= {
                    "newest": round(max(received), 3),
                    "p50": round(_quantile(lags, 0.5), 3),
                    "p95": round(_quantile(lags, 0.95), 3),
                    "max": round(lags[-1], 3),
                }
            f.write(orjson.dumps(record) + b"\n")
            f.flush()
            time.sleep(max(0.0, interval_s - (time.time() - started)))
    return hist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    con = _connect(args.data_dir)
    hist = poll_forever(con, args.out, args.interval)
    args.summary.write_bytes(orjson.dumps({str(k): v for k, v in sorted(hist.items())}))


if __name__ == "__main__":
    main()
