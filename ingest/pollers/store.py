"""The pollers' memory: cursors per subaccount and resource, and what was already published.

A SQLite file under the data directory (WAL journal; every change is one transaction, so the
file is always consistent). Two tables:

- ``cursors``: where the next pull of a subaccount's resource starts (a date or a time).
- ``items``: per resource and item (call, summary, usage day) the digest last published, its
  time, and whether it is still ``pending`` (a call not yet rated or finished, a partial
  summary): pending items are re-fetched until they settle or grow too old.

The store is what lets a restart neither re-pull everything (the cursors) nor publish again what
was published (the digests). It holds no secrets. One puller per store file.
"""

import asyncio
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["PullStore", "StoredItem"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    account_sid TEXT NOT NULL,
    resource TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_sid, resource)
);
CREATE TABLE IF NOT EXISTS items (
    resource TEXT NOT NULL,
    item_id TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    digest TEXT NOT NULL,
    item_time TEXT NOT NULL,
    pending INTEGER NOT NULL,
    PRIMARY KEY (resource, item_id)
);
CREATE INDEX IF NOT EXISTS items_pending ON items (resource, account_sid) WHERE pending = 1;
"""


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One published item: ``item_time`` is ISO 8601 (UTC) or a date."""

    item_id: str
    digest: str
    item_time: str
    pending: bool


class PullStore:
    """Cursors and published digests in one SQLite file; blocking work runs in a thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self._con is None:
            self._con = await asyncio.to_thread(self._connect)

    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(_SCHEMA)
        return con

    async def close(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            with self._lock:
                con.close()

    async def cursor(self, account_sid: str, resource: str) -> str | None:
        rows = await self._read(
            "SELECT value FROM cursors WHERE account_sid = ? AND resource = ?",
            (account_sid, resource),
        )
        return str(rows[0][0]) if rows else None

    async def set_cursor(self, account_sid: str, resource: str, value: str) -> None:
        now = datetime.now(UTC).isoformat()
        await self._write(
            "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT (account_sid, resource) "
            "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [(account_sid, resource, value, now)],
        )

    async def digests(self, resource: str, item_ids: Sequence[str]) -> dict[str, str]:
        """The last published digest of each of ``item_ids`` that was published before."""
        found: dict[str, str] = {}
        for start in range(0, len(item_ids), 500):
            chunk = item_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self._read(
                f"SELECT item_id, digest FROM items WHERE resource = ? AND item_id IN ({marks})",
                (resource, *chunk),
            )
            found.update((str(r[0]), str(r[1])) for r in rows)
        return found

    async def record(self, resource: str, account_sid: str, items: Iterable[StoredItem]) -> None:
        """Remember items as published (one transaction)."""
        rows = [
            (resource, i.item_id, account_sid, i.digest, i.item_time, int(i.pending)) for i in items
        ]
        if rows:
            await self._write(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (resource, item_id) DO "
                "UPDATE SET digest = excluded.digest, item_time = excluded.item_time, "
                "pending = excluded.pending",
                rows,
            )

    async def pending(self, resource: str, account_sid: str) -> list[StoredItem]:
        rows = await self._read(
            "SELECT item_id, digest, item_time FROM items "
            "WHERE resource = ? AND account_sid = ? AND pending = 1 ORDER BY item_time",
            (resource, account_sid),
        )
        return [StoredItem(str(r[0]), str(r[1]), str(r[2]), True) for r in rows]

    async def count_pending(self, resource: str) -> int:
        rows = await self._read(
            "SELECT count(*) FROM items WHERE resource = ? AND pending = 1", (resource,)
        )
        count = rows[0][0]
        assert isinstance(count, int)
        return count

    async def settle(self, resource: str, item_ids: Iterable[str]) -> None:
        """Stop re-fetching these items (settled, gone, or too old)."""
        rows = [(resource, item_id) for item_id in item_ids]
        if rows:
            await self._write(
                "UPDATE items SET pending = 0 WHERE resource = ? AND item_id = ?", rows
            )

    async def forget_before(self, resource: str, account_sid: str, item_time: str) -> None:
        """Drop settled items older than ``item_time``: no pull will list them again."""
        await self._write(
            "DELETE FROM items WHERE resource = ? AND account_sid = ? AND pending = 0 "
            "AND item_time < ?",
            [(resource, account_sid, item_time)],
        )

    async def _read(self, sql: str, params: tuple[str, ...]) -> list[tuple[object, ...]]:
        return await asyncio.to_thread(self._read_sync, sql, params)

    def _read_sync(self, sql: str, params: tuple[str, ...]) -> list[tuple[object, ...]]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    async def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        await asyncio.to_thread(self._write_sync, sql, rows)

    def _write_sync(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        with self._lock:
            con = self._connection()
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(sql, rows)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            raise RuntimeError("the pull store is not open")
        return self._con
