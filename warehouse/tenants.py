"""The ``tenants`` table: the subaccounts of the tenants file, for joins by name and parent."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

import duckdb

from voicepulse.errors import WarehouseError

__all__ = ["write_tenants"]


class TenantLike(Protocol):
    @property
    def account_sid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def parent_account_sid(self) -> str | None: ...
    @property
    def cps_limit(self) -> float: ...


def write_tenants(con: duckdb.DuckDBPyConnection, tenants: Mapping[str, TenantLike]) -> None:
    """Make ``tenants`` hold exactly these subaccounts (no tokens); unchanged: no commit."""
    wanted = sorted(
        (t.account_sid, t.name, t.parent_account_sid, float(t.cps_limit)) for t in tenants.values()
    )
    stored = sorted(
        con.sql("SELECT account_sid, name, parent_account_sid, cps_limit FROM tenants").fetchall()
    )
    if stored == wanted:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        con.execute("BEGIN")
        con.execute("DELETE FROM tenants")
        con.executemany("INSERT INTO tenants VALUES (?, ?, ?, ?, ?)", [[*t, now] for t in wanted])
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise WarehouseError(f"writing the tenants table failed: {exc}") from exc
