"""The dashboard's read-only view of the warehouse, off the event loop, with a short cache.

One read-only DuckDB connection to the lake is opened on first use (the dashboard may start
before the sink has created the warehouse); each query runs on a cursor of its own in a worker
thread, so slow queries never stall the event loop. Answers are cached for ``ttl_s`` seconds
per (query, arguments): a page refreshed by many people costs one query, and nothing shown is
older than that. The fleet, which takes seconds to compute at 1,000 subaccounts, is kept with
:meth:`Reader.latest`: past its time the kept answer is served at once while one background
refresh computes the next (stale-while-revalidate), so no page waits for it after the first.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import duckdb
from starlette.concurrency import run_in_threadpool

from voicepulse.errors import WarehouseError
from voicepulse.settings import Settings
from warehouse.lake import LAKE, open_lake

__all__ = ["Reader"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_ENTRIES = 512


class Reader:
    def __init__(self, settings: Settings, *, ttl_s: float = 5.0) -> None:
        self._settings = settings
        self._ttl_s = ttl_s
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._cache: dict[Hashable, tuple[float, Any]] = {}
        self._latest: dict[Hashable, tuple[float, Any]] = {}
        self._refreshing: dict[Hashable, asyncio.Task[None]] = {}

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                self._con = open_lake(self._settings, read_only=True)
            return self._con

    async def aclose(self) -> None:
        """Stop the background refreshes (waiting for their queries), then close."""
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.close()

    def close(self) -> None:
        with self._lock:
            con, self._con = self._con, None
        if con is not None:
            con.close()

    async def read(
        self,
        key: Hashable,
        query: Callable[[duckdb.DuckDBPyConnection], T],
        *,
        ttl_s: float | None = None,
    ) -> T:
        """``query(cursor)`` in a worker thread, or its answer of the last ``ttl_s`` seconds
        (default: the reader's)."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            answer: T = hit[1]
            return answer
        answer = await run_in_threadpool(self._run, query)
        if len(self._cache) >= _MAX_ENTRIES:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= _MAX_ENTRIES:
                self._cache.clear()
        keep = self._ttl_s if ttl_s is None else ttl_s
        self._cache[key] = (time.monotonic() + keep, answer)
        return answer

    async def latest(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """``make()``'s answer, computed on first use; once older than ``ttl_s`` it is still
        returned while one background refresh replaces it. ``ttl_s`` 0: always fresh."""
        if self._ttl_s <= 0:
            return await make()
        hit = self._latest.get(key)
        if hit is None:
            answer = await make()
            self._latest[key] = (time.monotonic() + self._ttl_s, answer)
            return answer
        if hit[0] <= time.monotonic() and key not in self._refreshing:
            task = asyncio.create_task(self._refresh(key, make), name=f"dashboard refresh {key}")
            self._refreshing[key] = task
        kept: T = hit[1]
        return kept

    async def _refresh(self, key: Hashable, make: Callable[[], Awaitable[Any]]) -> None:
        try:
            answer = await make()
            self._latest[key] = (time.monotonic() + self._ttl_s, answer)
        except WarehouseError as exc:
            logger.warning("refreshing %s failed, showing the previous answer: %s", key, exc)
        finally:
            self._refreshing.pop(key, None)

    async def run(self, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``query(cursor)`` in a worker thread, never cached (downloads, writes elsewhere)."""
        return await run_in_threadpool(self._run, query)

    def _run(self, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        cursor = self._connection().cursor()
        try:
            # A cursor is a connection of its own: it starts outside the lake, and must never
            # read a Python variable named like a table.
            cursor.execute(f"USE {LAKE}")
            cursor.execute("SET python_enable_replacements = false")
            return query(cursor)
        except duckdb.Error as exc:
            raise WarehouseError(f"dashboard query failed: {exc}") from exc
        finally:
            cursor.close()
