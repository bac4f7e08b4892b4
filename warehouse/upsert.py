"""The idempotent upsert: one MERGE per table per batch, following the table's :class:`TableSpec`.

Guarantees: replaying rows that are already stored changes nothing (no update is even written,
since an equal ``newer`` tuple does not replace); an older copy of a key never replaces a newer
one; inside one batch the same rule picks the winner before the MERGE (:func:`keep_newer`).
"""

from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.tables import TableSpec

__all__ = ["keep_newer", "upsert"]


def keep_newer(spec: TableSpec, stored: dict[str, Any] | None, incoming: dict[str, Any]) -> bool:
    """True when ``incoming`` should replace ``stored`` (the same rule as the MERGE's)."""
    if stored is None:
        return True
    if not spec.newer:
        return False
    return tuple(incoming[c] for c in spec.newer) > tuple(stored[c] for c in spec.newer)


def upsert(con: duckdb.DuckDBPyConnection, spec: TableSpec, batch: pa.Table) -> None:
    """MERGE ``batch`` (one row per key) into ``spec.table`` inside the caller's transaction."""
    name = f"batch_{spec.table}"
    con.register(name, batch)
    try:
        con.execute(merge_sql(spec, batch.schema.names, name, _window(spec, batch)))
    finally:
        con.unregister(name)


def merge_sql(
    spec: TableSpec, columns: list[str], source: str, window: tuple[str, str] | None
) -> str:
    match = [f"t.{k} = b.{k}" for k in spec.key]
    if window is not None and spec.window is not None:
        match.append(f"t.{spec.window} BETWEEN {window[0]} AND {window[1]}")
    sql = f"MERGE INTO {spec.table} AS t USING {source} AS b ON ({' AND '.join(match)}) "
    if spec.newer:
        update = ", ".join(f"{c} = b.{c}" for c in columns if c not in spec.key)
        sql += f"WHEN MATCHED AND {_newer(spec.newer)} THEN UPDATE SET {update} "
    values = ", ".join(f"b.{c}" for c in columns)
    return sql + f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({values})"


def _newer(columns: tuple[str, ...]) -> str:
    """``(b.c1, b.c2, ...) > (t.c1, t.c2, ...)`` spelt out lexicographically."""
    first, rest = columns[0], columns[1:]
    if not rest:
        return f"b.{first} > t.{first}"
    return f"(b.{first} > t.{first} OR (b.{first} = t.{first} AND {_newer(rest)}))"


def _window(spec: TableSpec, batch: pa.Table) -> tuple[str, str] | None:
    """The range of the window column that the batch's keys can already be stored in."""
    if spec.window is None or batch.num_rows == 0:
        return None
    column = batch.column(spec.window)
    low, high = pc.min(column).as_py(), pc.max(column).as_py()
    return _literal(low - spec.slack), _literal(high + spec.slack)


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    raise TypeError(f"no window literal for {value!r}")
