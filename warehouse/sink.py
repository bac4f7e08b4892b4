"""The warehouse sink: envelopes from the bus, upserted into DuckLake tables in batches.

The commit protocol (with :class:`voicepulse.stage.ConsumerStage`):

1. ``handle`` decodes each record into its table's buffer (:mod:`warehouse.tables` says which
   table and which copy of a key wins); a record that cannot be decoded, or does not fit its
   table, goes to the dead-letter topic with the reason, topic, partition and offset, and the
   batch goes on.
2. When the buffer reaches the batch size, or the flush interval has passed, ``flush`` upserts
   every buffered table in one DuckDB transaction (:func:`warehouse.upsert.upsert`), and clears
   the buffer in ``finally``.
3. Only then does the stage commit the consumer offsets. A crash before 3 replays the batch;
   the upsert leaves the tables as they were, so replaying any topic from offset zero is harmless.

DuckDB calls are blocking: they run in a worker thread, one at a time. Maintenance (merging small
files, expiring snapshots) runs in the same thread between batches, on its own schedule.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from voicepulse.deadletter import dead_letter
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage, WarehouseError
from voicepulse.metrics import StageCounters
from voicepulse.stage import Ticker
from voicepulse.types import Bus, Record
from warehouse.hourly import has_hours, refresh_hours
from warehouse.maintenance import Maintenance
from warehouse.tables import BY_TYPE, SINK_TOPICS, TABLES, TableSpec
from warehouse.upsert import buffer_key, kept, upsert

__all__ = ["SINK_TOPICS", "TableSpec", "WarehouseSink", "lake_schemas"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    row: dict[str, Any]
    record: Record


def lake_schemas(con: duckdb.DuckDBPyConnection) -> dict[TableSpec, pa.Schema]:
    """The Arrow schema of each sink table, read from the migrated lake."""
    return {
        spec: con.sql(f"SELECT * FROM {spec.table} LIMIT 0").to_arrow_table().schema
        for spec in TABLES
    }


class WarehouseSink:
    """A batching sink (``add`` by ``handle``, bulk ``flush``) over one DuckDB connection."""

    name = "sink"

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        bus: Bus,
        *,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        maintenance: Maintenance | None = None,
        metrics: StageCounters | None = None,
    ) -> None:
        self._con = con
        self._metrics = metrics
        self._bus = bus
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._maintenance = maintenance
        self._schemas = lake_schemas(con)
        self._hours = has_hours(con)
        self._buffer: dict[TableSpec, dict[tuple[Any, ...], _Pending]] = {}
        self._buffered = 0
        self._since_flush = Ticker()
        self._lock = asyncio.Lock()
        self.rows_written = 0
        self.dead_lettered = 0

    async def handle(self, records: Sequence[Record]) -> bool:
        for record in records:
            try:
                self._add(record)
            except BadMessage as exc:
                await self._dead_letter(record, str(exc))
        if self._buffered >= self._batch_size or (
            self._buffered and self._since_flush.elapsed >= self._flush_interval_s
        ):
            await self.flush()
            return True
        return self._buffered == 0

    def _add(self, record: Record) -> None:
        envelope = Envelope.from_json(record.value)
        spec = BY_TYPE.get(envelope.type)
        if spec is None:
            raise BadMessage(f"no table for envelope type {envelope.type!r}")
        try:
            row = spec.to_row(envelope)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadMessage(f"{envelope.type} envelope does not fit {spec.table}: {exc}") from exc
        rows = self._buffer.setdefault(spec, {})
        key = buffer_key(spec, row)
        stored = rows.get(key)
        winner = kept(spec, stored.row if stored else None, row)
        if winner is not None:
            rows[key] = _Pending(winner, record)
        self._buffered += 1

    async def flush(self) -> None:
        """Write every buffered row in one transaction; the buffer is cleared even on failure."""
        async with self._lock:
            if not self._buffered:
                self._since_flush.reset()
                return
            try:
                batches, rejected = self._to_arrow()
                for pending, reason in rejected:
                    await self._dead_letter(pending.record, reason)
                started = time.perf_counter()
                await asyncio.to_thread(self._write, batches)
                if self._metrics is not None:
                    rows = sum(t.num_rows for t in batches.values())
                    self._metrics.flushed(rows, time.perf_counter() - started)
            finally:
                self._buffer.clear()
                self._buffered = 0
                self._since_flush.reset()

    def _to_arrow(self) -> tuple[dict[TableSpec, pa.Table], list[tuple[_Pending, str]]]:
        batches: dict[TableSpec, pa.Table] = {}
        rejected: list[tuple[_Pending, str]] = []
        for spec, pending in self._buffer.items():
            schema = self._schemas[spec]
            try:
                batches[spec] = pa.Table.from_pylist([p.row for p in pending.values()], schema)
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                batches[spec], bad = _convert_one_by_one(list(pending.values()), schema)
                rejected.extend((p, f"does not fit {spec.table}: {why}") for p, why in bad)
        return batches, rejected

    def _write(self, batches: Mapping[TableSpec, pa.Table]) -> None:
        write_batches(self._con, batches, hours=self._hours)
        self.rows_written += sum(t.num_rows for t in batches.values())
        if self._maintenance is not None:
            self._maintenance.run_if_due(self._con)

    async def _dead_letter(self, record: Record, reason: str) -> None:
        self.dead_lettered += 1
        if self._metrics is not None:
            self._metrics.dead_lettered(1)
        await dead_letter(self._bus, record, reason, stage=self.name)


def write_batches(
    con: duckdb.DuckDBPyConnection,
    batches: Mapping[TableSpec, pa.Table],
    *,
    attempts: int = 8,
    hours: bool = True,
) -> None:
    """Upsert each table's batch, all in one transaction: the lake has all of them or none.
    The hours of the health_minute rows are rewritten in ``health_hour`` in the same transaction
    (``hours``: false for a lake from before migration 0016, which has no such table).

    A commit that conflicts with another writer of the same lake (several sinks on a shared
    PostgreSQL catalog, or on one SQLite file, which locks) is retried from the start, up to
    ``attempts`` times over a few seconds; the upsert reads the other writer's rows first, so
    the retry stays idempotent.
    """
    for attempt in range(1, attempts + 1):
        try:
            con.execute("BEGIN")
            for spec, batch in batches.items():
                if batch.num_rows:
                    upsert(con, spec, batch)
                    if hours and spec.table == "health_minute":
                        _refresh_hours(con, batch)
            con.execute("COMMIT")
            return
        except duckdb.TransactionException as exc:
            _rollback(con)
            if attempt == attempts:
                raise WarehouseError(
                    f"writing the batch conflicted {attempts} times: {exc}"
                ) from exc
            logger.warning("batch commit conflicted with another writer; retrying: %s", exc)
            time.sleep(min(1.0, 0.05 * 2**attempt))
        except duckdb.Error as exc:
            _rollback(con)
            raise WarehouseError(f"writing the batch failed: {exc}") from exc


def _refresh_hours(con: duckdb.DuckDBPyConnection, batch: pa.Table) -> None:
    con.register("written_minutes", batch)
    try:
        refresh_hours(con, "written_minutes")
    finally:
        con.unregister("written_minutes")


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # nothing to roll back when BEGIN itself failed
        con.execute("ROLLBACK")


def _convert_one_by_one(
    pending: list[_Pending], schema: pa.Schema
) -> tuple[pa.Table, list[tuple[_Pending, str]]]:
    """Find the rows Arrow refuses (an out-of-range integer, say): keep the rest."""
    good: list[dict[str, Any]] = []
    bad: list[tuple[_Pending, str]] = []
    for item in pending:
        try:
            pa.Table.from_pylist([item.row], schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            bad.append((item, str(exc)))
        else:
            good.append(item.row)
    return pa.Table.from_pylist(good, schema), bad
