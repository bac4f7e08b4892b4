"""Schema migrations: numbered SQL files applied in order, recorded in ``schema_version``.

Each file in ``warehouse/migrations`` (``NNNN_name.sql``) runs once, in one transaction with its
row in ``schema_version``; an older warehouse is brought up to date in place on start.
"""

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import duckdb

from voicepulse.errors import WarehouseError

__all__ = ["Migration", "current_version", "migrate", "migrations"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with this release, in order."""
    found = []
    for entry in resources.files("warehouse").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(
    con: duckdb.DuckDBPyConnection,
    *,
    target: int | None = None,
    available: Sequence[Migration] | None = None,
) -> int:
    """Apply the migrations the warehouse has not applied (up to ``target``, default all), in
    order; return the version it is now at. Each migration commits whole or not at all, rows
    already stored stay. A migration numbered below one already applied (two lines of work
    that each added one) is applied too, not skipped. ``available`` stands in for the shipped
    migrations (tests)."""
    version = current_version(con)
    applied = {v for (v,) in con.execute("SELECT version FROM schema_version").fetchall()}
    for migration in migrations() if available is None else available:
        if migration.version in applied:
            continue
        if target is not None and migration.version > target:
            break
        logger.info("migrating the warehouse to %04d_%s", migration.version, migration.name)
        try:
            con.execute("BEGIN")
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now()::TIMESTAMP)",
                [migration.version, migration.name],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise WarehouseError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}"
            ) from exc
        version = max(version, migration.version)
    return version
