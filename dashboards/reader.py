"""The dashboard's read-only view of the warehouse, off the event loop, with a short cache.

One read-only DuckDB connection to the lake is opened on first use (the dashboard may start
before the sink has created the warehouse); each query runs on a cursor of its own in a worker
thread, so slow queries never stall the event loop. Answers are cached for ``ttl_s`` seconds
per (query, arguments): a page refreshed by many people costs one query, and nothing shown is
older than that.
"""

import logging
import threading
import time
from collections.abc import Callable, Hashable
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

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                self._con = open_lake(self._settings, read_only=True)
            return self._con

    def close(self) -> None:
        with self._lock:
            con, self._con = self._con, None
        if con is not None:
            con.close()

    async def read(self, key: Hashable, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``query(cursor)`` in a worker thread, or its answer of the last ``ttl_s`` seconds."""
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
        self._cache[key] = (time.monotonic() + self._ttl_s, answer)
        return answer

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
