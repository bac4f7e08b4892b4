"""The idempotent upsert of one batch into one table, following the table's :class:`TableSpec`.

Guarantees: replaying rows that are already stored changes nothing (nothing is even written,
since an equal ``newer`` tuple does not replace); an older copy of a key never replaces a newer
one; inside one batch the same rule picks the winner first (:func:`kept`), merging the rows of
a table that merges (:mod:`warehouse.merge`) the same way as the SQL path does.
"""

import dataclasses
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.tables import TableSpec

__all__ = ["keep_newer", "kept", "upsert"]


def keep_newer(spec: TableSpec, stored: dict[str, Any] | None, incoming: dict[str, Any]) -> bool:
    """True when ``incoming`` wins over ``stored`` (the same rule as the SQL's)."""
    if stored is None:
        return True
    if not spec.newer:
        return False
    return tuple(incoming[c] for c in spec.newer) > tuple(stored[c] for c in spec.newer)


def kept(
    spec: TableSpec, stored: dict[str, Any] | None, incoming: dict[str, Any]
) -> dict[str, Any] | None:
    """The row to hold for a key after ``incoming`` (``incoming``, or it merged into ``stored``
    when the table merges), or None when ``stored`` stays as it is (the same rule as the SQL's)."""
    if not keep_newer(spec, stored, incoming):
        return None
    if stored is not None and spec.merge is not None:
        return spec.merge(stored, incoming)
    return incoming


def upsert(con: duckdb.DuckDBPyConnection, spec: TableSpec, batch: pa.Table) -> None:
    """Upsert ``batch`` (one row per key) into ``spec.table`` inside the caller's transaction.

    1. Look up which keys of the batch are stored (only the key and ``newer`` columns, only in
       the files inside the batch's window) and whether the batch's copy wins.
    2. Delete the stored rows that lose, if any.
    3. Insert every batch row except those whose stored copy wins; for a table that merges
       (``spec.merge``), a batch row that wins over a stored row it must be merged into is
       merged with it first (the stored rows are read only for those keys: rarely any).
    Plain INSERTs (rather than MERGE) let DuckLake inline small batches into the catalog.
    """
    spec = _fitted(spec, batch.schema.names)
    source = f"batch_{spec.table}"
    hits = f"temp.main.hits_{spec.table}"
    names = ", ".join(batch.schema.names)
    match = " AND ".join(f"h.{k} = b.{k}" for k in spec.key)
    bounded = _bounded(spec, _window(spec, batch))
    con.register(source, batch)
    try:
        con.execute(hits_sql(spec, source, bounded))
        won = con.sql(
            f"SELECT count(*) FILTER (WHERE wins), count(*), count(*) FILTER (WHERE merge) "
            f"FROM {hits}"
        ).fetchone()
        replaced = " AND ".join(f"h.{k} = t.{k}" for k in spec.key)
        if won and won[2]:
            batch = _merged(con, spec, batch, hits, replaced, bounded)
            con.register(source, batch)
        if won and won[0]:
            con.execute(
                f"DELETE FROM {spec.table} AS t WHERE EXISTS "
                f"(SELECT 1 FROM {hits} AS h WHERE h.wins AND {replaced}){bounded}"
            )
        lose = (
            f" WHERE NOT EXISTS (SELECT 1 FROM {hits} AS h WHERE NOT h.wins AND {match})"
            if won and won[1] > won[0]
            else ""
        )
        con.execute(f"INSERT INTO {spec.table} ({names}) SELECT {names} FROM {source} AS b{lose}")
        con.execute(f"DROP TABLE {hits}")
    finally:
        con.unregister(source)


def hits_sql(spec: TableSpec, source: str, bounded: str) -> str:
    """The batch's keys that are already stored, each with ``wins``: the batch copy is newer."""
    match = " AND ".join(f"t.{k} = b.{k}" for k in spec.key)
    looked_up = ", ".join(dict.fromkeys((*spec.key, *spec.newer, *spec.merge_reads)))
    wins = _newer(spec.newer) if spec.newer else "false"
    merge = f"{wins} AND ({spec.merge_when})" if spec.merge_when else "false"
    keys = ", ".join(f"b.{k}" for k in spec.key)
    return (
        f"CREATE OR REPLACE TEMP TABLE hits_{spec.table} AS "
        f"SELECT {keys}, {wins} AS wins, {merge} AS merge FROM {source} AS b "
        f"JOIN (SELECT {looked_up} FROM {spec.table} AS t WHERE true{bounded}) AS t ON ({match})"
    )


def _fitted(spec: TableSpec, columns: list[str]) -> TableSpec:
    """``spec`` for a lake that may predate some of the columns it compares or merges by
    (written before its migrations ran): without them, the rule of the release before."""
    newer = tuple(c for c in spec.newer if c in columns)
    if newer == spec.newer and all(c in columns for c in spec.merge_reads):
        return spec
    return dataclasses.replace(spec, newer=newer, merge=None, merge_when=None, merge_reads=())


def _merged(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    batch: pa.Table,
    hits: str,
    replaced: str,
    bounded: str,
) -> pa.Table:
    """The batch with each row that must be merged into its stored copy merged into it."""
    merge = spec.merge
    if merge is None:
        return batch
    stored = con.sql(
        f"SELECT * FROM {spec.table} AS t WHERE EXISTS "
        f"(SELECT 1 FROM {hits} AS h WHERE h.merge AND {replaced}){bounded}"
    ).to_arrow_table()
    by_key = {tuple(row[k] for k in spec.key): row for row in stored.to_pylist()}
    rows = batch.to_pylist()
    for i, row in enumerate(rows):
        old = by_key.get(tuple(row[k] for k in spec.key))
        if old is not None:
            rows[i] = merge(old, row)
    return pa.Table.from_pylist(rows, batch.schema)


def _bounded(spec: TableSpec, window: tuple[str, str] | None) -> str:
    if window is None or spec.window is None:
        return ""
    return f" AND t.{spec.window} BETWEEN {window[0]} AND {window[1]}"


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
    low = min(pc.min(batch.column(c)).as_py() for c in (spec.window, *spec.earliest))
    high = pc.max(column).as_py() + spec.slack
    if spec.cut_short is not None:
        cut = pc.max(batch.filter(pc.field(spec.cut_short)).column(spec.window))
        if cut.is_valid:
            high = max(high, cut.as_py() + spec.cut_short_slack)
    return _literal(low - spec.slack), _literal(high)


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    raise TypeError(f"no window literal for {value!r}")
