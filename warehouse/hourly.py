"""``health_hour``, the hourly rollup of ``health_minute`` kept by its writers (migration 0016).

Whoever writes minute rows rewrites their hours in the same transaction, from the stored minutes
(the catalog's ``health_hours_of`` macro): an hour is always the merge of the minutes stored for
it, whatever order, replays or replacements brought them. Readers roll it up further with
``health_rollup_of('health_hour', unit)``, the definition ``health_rollup`` applies to minutes.
"""

from datetime import timedelta

import duckdb

__all__ = ["has_hours", "refresh_hours"]

_HOUR = timedelta(hours=1)


def has_hours(con: duckdb.DuckDBPyConnection) -> bool:
    """The lake has ``health_hour`` (migrated to 0016 or later)."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name = 'health_hour'"
    ).fetchone()
    return bool(found and found[0])


def refresh_hours(con: duckdb.DuckDBPyConnection, windows: str) -> None:
    """Rewrite the ``health_hour`` rows of the hours that hold the windows ``windows`` (a
    relation with ``account_sid``, ``direction_group`` and ``window_start``), inside the
    caller's transaction, after the minute rows were written."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE changed_hours AS SELECT DISTINCT account_sid, "
        f"direction_group, date_trunc('hour', window_start) AS hour FROM {windows}"
    )
    span = con.sql("SELECT min(hour), max(hour) FROM temp.main.changed_hours").fetchone()
    if span is None or span[0] is None:
        con.execute("DROP TABLE temp.main.changed_hours")
        return
    low, high = span[0], span[1] + _HOUR
    changed = (
        "EXISTS (SELECT 1 FROM temp.main.changed_hours AS c WHERE c.account_sid = t.account_sid "
        "AND c.direction_group = t.direction_group AND c.hour = {})"
    )
    minute_of = changed.format("date_trunc('hour', t.window_start)")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE changed_minutes AS SELECT * FROM health_minute AS t "
        f"WHERE t.window_start >= ? AND t.window_start < ? AND {minute_of}",
        [low, high],
    )
    con.execute("CREATE OR REPLACE TEMP TABLE new_hours AS FROM health_hour LIMIT 0")
    con.execute(
        "INSERT INTO temp.main.new_hours BY NAME "
        "SELECT * FROM health_hours_of('temp.main.changed_minutes')"
    )
    # Only the hours that differ from the stored ones are written: a replay writes nothing.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE differing_hours AS "
        "SELECT c.account_sid, c.direction_group, c.hour FROM temp.main.changed_hours AS c "
        "LEFT JOIN temp.main.new_hours AS n ON n.account_sid = c.account_sid "
        "AND n.direction_group = c.direction_group AND n.window_start = c.hour "
        "LEFT JOIN (SELECT * FROM health_hour WHERE window_start >= ? AND window_start < ?) AS s "
        "ON s.account_sid = c.account_sid AND s.direction_group = c.direction_group "
        "AND s.window_start = c.hour WHERE n IS DISTINCT FROM s",
        [low, high],
    )
    differing = con.sql("SELECT count(*) FROM temp.main.differing_hours").fetchone()
    if differing and differing[0]:
        written = (
            "EXISTS (SELECT 1 FROM temp.main.differing_hours AS d "
            "WHERE d.account_sid = t.account_sid AND d.direction_group = t.direction_group "
            "AND d.hour = t.window_start)"
        )
        con.execute(
            "DELETE FROM health_hour AS t WHERE t.window_start >= ? AND t.window_start < ? "
            f"AND {written}",
            [low, high],
        )
        con.execute(
            f"INSERT INTO health_hour SELECT * FROM temp.main.new_hours AS t WHERE {written}"
        )
    for table in ("changed_hours", "changed_minutes", "new_hours", "differing_hours"):
        con.execute(f"DROP TABLE temp.main.{table}")
