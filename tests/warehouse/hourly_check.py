"""What every writer of ``health_minute`` must leave: ``health_hour`` equal to its minutes."""

from typing import Any

import duckdb

__all__ = ["assert_hours_match_minutes"]


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.sql(f"SELECT * FROM ({sql}) ORDER BY ALL").fetchall()


def assert_hours_match_minutes(con: duckdb.DuckDBPyConnection) -> None:
    """The stored hours are the stored minutes merged, and rolling either up gives the same
    rows (percentiles included) by hour and by day."""
    stored = _rows(con, "SELECT * FROM health_hour")
    assert stored == _rows(con, "SELECT * FROM health_hours_of('health_minute')")
    for unit in ("hour", "day"):
        from_hours = _rows(con, f"SELECT * FROM health_rollup_of('health_hour', '{unit}')")
        assert from_hours == _rows(con, f"SELECT * FROM health_rollup('{unit}')"), unit
