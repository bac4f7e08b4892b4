"""The warehouse sink: envelopes from the bus, upserted into DuckLake tables in batches.

The commit protocol (with :class:`voicepulse.stage.ConsumerStage`):

1. ``handle`` decodes each record into its table's buffer; a record that cannot be decoded goes
   to the dead-letter topic and the batch goes on.
2. When the buffer reaches the batch size, or the flush interval has passed, ``flush`` upserts
   every buffered table in one DuckDB transaction (MERGE on the table's key, the latest version
   of each key in the batch winning), and clears the buffer in ``finally``.
3. Only then does the stage commit the consumer offsets. A crash before 3 replays the batch;
   the upsert leaves the tables as they were, so replaying any topic from offset zero is harmless.

DuckDB calls are blocking: they run in a worker thread, one at a time.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from voicepulse import topics
from voicepulse.deadletter import dead_letter
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage, WarehouseError
from voicepulse.stage import Ticker
from voicepulse.types import Bus, Record

__all__ = ["SINK_TOPICS", "TableSpec", "WarehouseSink"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one envelope type becomes one row of one table."""

    table: str
    key: tuple[str, ...]
    schema: pa.Schema
    to_row: Callable[[Envelope], dict[str, Any]]


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in columns])


def _utc_naive(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def _health_row(envelope: Envelope) -> dict[str, Any]:
    fields = envelope.fields
    return {
        "account_sid": envelope.account_sid,
        "direction_group": fields["direction_group"],
        "window_start": _utc_naive(fields["window_start"]),
        "attempts": int(fields["attempts"]),
        "answered": int(fields["answered"]),
        "updated_at": _utc_naive(envelope.received_at),
    }


HEALTH_MINUTE = TableSpec(
    table="health_minute",
    key=("account_sid", "direction_group", "window_start"),
    schema=_schema(
        ("account_sid", pa.string()),
        ("direction_group", pa.string()),
        ("window_start", pa.timestamp("us")),
        ("attempts", pa.int64()),
        ("answered", pa.int64()),
        ("updated_at", pa.timestamp("us")),
    ),
    to_row=_health_row,
)

_BY_TYPE: Mapping[str, TableSpec] = {"health-minute": HEALTH_MINUTE}
SINK_TOPICS = (topics.HEALTH,)


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
    ) -> None:
        self._con = con
        self._bus = bus
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._buffer: dict[TableSpec, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self._buffered = 0
        self._since_flush = Ticker()
        self._lock = asyncio.Lock()
        self.rows_written = 0

    async def handle(self, records: Sequence[Record]) -> bool:
        for record in records:
            try:
                self._add(Envelope.from_json(record.value))
            except BadMessage as exc:
                await dead_letter(self._bus, record, str(exc), stage=self.name)
        if self._buffered >= self._batch_size or (
            self._buffered and self._since_flush.elapsed >= self._flush_interval_s
        ):
            await self.flush()
            return True
        return self._buffered == 0

    def _add(self, envelope: Envelope) -> None:
        spec = _BY_TYPE.get(envelope.type)
        if spec is None:
            raise BadMessage(f"no table for envelope type {envelope.type!r}")
        try:
            row = spec.to_row(envelope)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadMessage(
                f"{envelope.type} envelope does not fit {spec.table}: {exc!r}"
            ) from exc
        self._buffer.setdefault(spec, {})[tuple(row[k] for k in spec.key)] = row
        self._buffered += 1

    async def flush(self) -> None:
        async with self._lock:
            if not self._buffered:
                self._since_flush.reset()
                return
            batches = {spec: list(rows.values()) for spec, rows in self._buffer.items()}
            try:
                await asyncio.to_thread(self._write, batches)
            finally:
                self._buffer.clear()
                self._buffered = 0
                self._since_flush.reset()

    def _write(self, batches: Mapping[TableSpec, list[dict[str, Any]]]) -> None:
        con = self._con
        try:
            con.execute("BEGIN")
            for spec, rows in batches.items():
                _upsert(con, spec, pa.Table.from_pylist(rows, schema=spec.schema))
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise WarehouseError(f"writing the batch failed: {exc}") from exc
        self.rows_written += sum(len(rows) for rows in batches.values())


def _upsert(con: duckdb.DuckDBPyConnection, spec: TableSpec, batch: pa.Table) -> None:
    con.register("batch", batch)
    try:
        names = spec.schema.names
        match = " AND ".join(f"t.{k} = b.{k}" for k in spec.key)
        update = ", ".join(f"{c} = b.{c}" for c in names if c not in spec.key)
        columns = ", ".join(names)
        values = ", ".join(f"b.{c}" for c in names)
        con.execute(
            f"MERGE INTO {spec.table} AS t USING batch AS b ON ({match}) "
            f"WHEN MATCHED THEN UPDATE SET {update} "
            f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
        )
    finally:
        con.unregister("batch")
