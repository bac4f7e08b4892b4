"""The idempotent upsert of one batch into one table, following the table's :class:`TableSpec`.

Guarantees: replaying rows that are already stored changes nothing (nothing is even written,
since an equal ``newer`` tuple does not replace); an older copy of a key never replaces a newer
one; inside one batch the same rule picks the winner first (:func:`kept`, per key and state).
For a table whose rows come in states (calls, :mod:`warehouse.merge`), the stored row of a key
with several states is the fold of the highest row of each, the same whatever the order of
arrival: an earlier state's row arriving after a later state's still counts.
"""

import dataclasses
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.tables import TableSpec

__all__ = ["keep_newer", "kept", "sql_literal", "upsert"]


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
    """The row to hold for a key (and state, see :func:`buffer_key`) after ``incoming``, or None
    when ``stored`` stays as it is (the same rule as the SQL's)."""
    return incoming if keep_newer(spec, stored, incoming) else None


def buffer_key(spec: TableSpec, row: dict[str, Any]) -> tuple[Any, ...]:
    """What a batch holds one row of: the key, and the state for a table that folds states."""
    key = tuple(row[k] for k in spec.key)
    return (*key, row[spec.state_key]) if spec.state_key else key


def upsert(con: duckdb.DuckDBPyConnection, spec: TableSpec, batch: pa.Table) -> None:
    """Upsert ``batch`` (one row per key) into ``spec.table`` inside the caller's transaction.

    1. Look up which keys of the batch are stored (only the key and ``newer`` columns, only in
       the files inside the batch's window) and whether the batch's copy wins.
    2. Delete the stored rows that lose, if any.
    3. Insert every batch row except those whose stored copy wins; for a table that merges
       (``spec.merge``), a batch row that wins over a stored row it must be merged into is
       merged with it first (the stored rows are read only for those keys: rarely any).
    For a table that folds states, the batch may hold several rows of a key (one per state):
    they are folded first, and a stored row that the ``merge_when`` says has other states is
    folded with the key's known states (``states_table``) and the batch's, which are stored
    back there.
    Plain INSERTs (rather than MERGE) let DuckLake inline small batches into the catalog.
    """
    spec = _fitted(spec, batch.schema.names)
    batch_states: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    if spec.fold is not None:
        batch, batch_states = _fold_batch(spec, batch)
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
        if (won and won[2]) or batch_states:
            batch = _merged(con, spec, batch, batch_states, hits, replaced, bounded)
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
    merge = f"({spec.merge_when})" if spec.merge_when else "false"
    wins = f"({wins} OR {merge})"  # a key with several states takes its fold
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
    reads = (*spec.merge_reads, *((spec.state_key,) if spec.state_key else ()))
    if newer == spec.newer and all(c in columns for c in reads):
        return spec
    return dataclasses.replace(
        spec,
        newer=newer,
        fold=None,
        state_key=None,
        states_table=None,
        merge_when=None,
        merge_reads=(),
    )


Row = dict[str, Any]


def _fold_batch(
    spec: TableSpec, batch: pa.Table
) -> tuple[pa.Table, dict[tuple[Any, ...], list[Row]]]:
    """One row per key: the keys with several states in the batch folded; those states."""
    assert spec.fold is not None
    assert len(spec.key) == 1, "a table that folds states has a one-column key"
    distinct = pc.count_distinct(batch.column(spec.key[0]))
    if distinct.as_py() == batch.num_rows:
        return batch, {}  # one state per key (nearly always): nothing to fold
    by_key: dict[tuple[Any, ...], list[Row]] = {}
    rows = batch.to_pylist()
    for row in rows:
        by_key.setdefault(tuple(row[k] for k in spec.key), []).append(row)
    several = {key: states for key, states in by_key.items() if len(states) > 1}
    if not several:
        return batch, {}
    folded = [
        spec.fold(_latest(spec, states)) if len(states) > 1 else states[0]
        for states in by_key.values()
    ]
    return pa.Table.from_pylist(folded, batch.schema), several


def _latest(spec: TableSpec, rows: list[Row]) -> list[Row]:
    """The highest row of each state, in state order."""
    assert spec.state_key is not None
    latest: dict[Any, Row] = {}
    for row in rows:
        held = latest.get(row[spec.state_key])
        if held is None or tuple(row[c] for c in spec.newer) > tuple(held[c] for c in spec.newer):
            latest[row[spec.state_key]] = row
    return [latest[state] for state in sorted(latest)]


def _merged(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    batch: pa.Table,
    batch_states: dict[tuple[Any, ...], list[Row]],
    hits: str,
    replaced: str,
    bounded: str,
) -> pa.Table:
    """The batch with the row of each key that has several states folded from all of them
    (stored, known and in the batch); their states written to ``spec.states_table``."""
    fold, states_table = spec.fold, spec.states_table
    if fold is None or states_table is None:
        return batch
    stored = con.sql(
        f"SELECT * FROM {spec.table} AS t WHERE EXISTS "
        f"(SELECT 1 FROM {hits} AS h WHERE h.merge AND {replaced}){bounded}"
    ).to_arrow_table()
    stored_by_key = {tuple(row[k] for k in spec.key): row for row in stored.to_pylist()}
    keys = set(stored_by_key) | set(batch_states)
    known = _known_states(con, spec, states_table, keys)
    rows = batch.to_pylist()
    written: list[Row] = []
    for i, row in enumerate(rows):
        key = tuple(row[k] for k in spec.key)
        if key not in keys:
            continue
        old = stored_by_key.get(key)
        facts = [*known.get(key, []), *batch_states.get(key, [row])]
        if old is not None and not (old["merged"] and known.get(key)):
            facts.append(old)  # a stored single state (a merged row's states are known)
        states = _latest(spec, facts)
        rows[i] = fold(states)
        if len(states) > 1:
            written.extend(states)
    _store_states(con, spec, states_table, written)
    return pa.Table.from_pylist(rows, batch.schema)


def _known_states(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, table: str, keys: set[tuple[Any, ...]]
) -> dict[tuple[Any, ...], list[Row]]:
    if not keys:
        return {}
    wanted = pa.Table.from_pylist([dict(zip(spec.key, key, strict=True)) for key in keys])
    con.register("wanted_keys", wanted)
    try:
        match = " AND ".join(f"s.{k} = w.{k}" for k in spec.key)
        found = con.sql(
            f"SELECT s.* FROM {table} AS s JOIN wanted_keys AS w ON ({match})"
        ).to_arrow_table()
    finally:
        con.unregister("wanted_keys")
    known: dict[tuple[Any, ...], list[Row]] = {}
    for row in found.to_pylist():
        known.setdefault(tuple(row[k] for k in spec.key), []).append(row)
    return known


def _store_states(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, table: str, states: list[Row]
) -> None:
    """Replace the stored states of these rows' keys by these rows."""
    if not states:
        return
    schema = con.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table().schema
    columns = schema.names
    batch = pa.Table.from_pylist([{c: s.get(c) for c in columns} for s in states], schema)
    con.register("new_states", batch)
    try:
        match = " AND ".join(f"s.{k} = n.{k}" for k in spec.key)
        con.execute(
            f"DELETE FROM {table} AS s WHERE EXISTS (SELECT 1 FROM new_states AS n WHERE {match})"
        )
        names = ", ".join(columns)
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM new_states")
    finally:
        con.unregister("new_states")


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
    return sql_literal(low - spec.slack), sql_literal(high)


def sql_literal(value: Any) -> str:
    """A time or date as a SQL literal: DuckLake prunes files by a literal bound, never by a
    prepared parameter."""
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    raise TypeError(f"no window literal for {value!r}")
