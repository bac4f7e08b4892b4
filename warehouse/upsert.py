"""The idempotent upsert of one batch into one table, following the table's :class:`TableSpec`.

Guarantees: replaying rows that are already stored changes nothing (nothing is even written,
since an equal ``newer`` tuple does not replace); an older copy of a key never replaces a newer
one; inside one batch the same rule picks the winner first (:func:`keep_newer`).
"""

from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.tables import TableSpec

__all__ = ["keep_newer", "upsert"]


def keep_newer(spec: TableSpec, stored: dict[str, Any] | None, incoming: dict[str, Any]) -> bool:
    """True when ``incoming`` should replace ``stored`` (the same rule as the SQL's)."""
    if stored is None:
        return True
    if not spec.newer:
        return False
    return tuple(incoming[c] for c in spec.newer) > tuple(stored[c] for c in spec.newer)


def upsert(con: duckdb.DuckDBPyConnection, spec: TableSpec, batch: pa.Table) -> None:
    """Upsert ``batch`` (one row per key) into ``spec.table`` inside the caller's transaction.

    1. Keep the batch rows whose key is not stored, or whose stored row is older (``newer``).
    2. Delete the stored rows those replace. 3. Insert the kept rows.
    Plain INSERTs (rather than MERGE) let DuckLake inline small batches into the catalog.
    """
    source = f"batch_{spec.table}"
    con.register(source, batch)
    try:
        for sql in upsert_sql(spec, batch.schema.names, source, _window(spec, batch)):
            con.execute(sql)
        con.execute(f"DROP TABLE temp.main.winners_{spec.table}")
    finally:
        con.unregister(source)


def upsert_sql(
    spec: TableSpec, columns: list[str], source: str, window: tuple[str, str] | None
) -> list[str]:
    winners = f"temp.main.winners_{spec.table}"
    match = " AND ".join(f"t.{k} = b.{k}" for k in spec.key)
    bounded = ""
    if window is not None and spec.window is not None:
        bounded = f" AND t.{spec.window} BETWEEN {window[0]} AND {window[1]}"
    stored = f"SELECT * FROM {spec.table} AS t WHERE true{bounded}"
    keep = f"t.{spec.key[0]} IS NULL"
    if spec.newer:
        keep += f" OR {_newer(spec.newer)}"
    names = ", ".join(columns)
    steps = [
        f"CREATE OR REPLACE TEMP TABLE winners_{spec.table} AS "
        f"SELECT {', '.join(f'b.{c}' for c in columns)} FROM {source} AS b "
        f"LEFT JOIN ({stored}) AS t ON ({match}) WHERE {keep}",
    ]
    if spec.newer:
        replaced = " AND ".join(f"t.{k} = w.{k}" for k in spec.key)
        steps.append(
            f"DELETE FROM {spec.table} AS t WHERE EXISTS "
            f"(SELECT 1 FROM {winners} AS w WHERE {replaced}){bounded}"
        )
    steps.append(f"INSERT INTO {spec.table} ({names}) SELECT {names} FROM {winners}")
    return steps


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
