"""DuckLake upkeep on a schedule: fewer, larger files, and no unbounded history.

Every commit writes at least one Parquet file (a sink flushing each second makes 86,400 a day),
so the sink periodically flushes inlined rows to files, merges adjacent small files, expires
snapshots older than the retention, and deletes the files no snapshot needs any more. Readers
pinned to an expired snapshot finish their query; a new query sees the current snapshot.
"""

import logging
import time
from dataclasses import dataclass, field

import duckdb

from voicepulse.errors import WarehouseError
from warehouse.lake import LAKE

__all__ = ["Maintenance", "maintain"]

logger = logging.getLogger(__name__)


@dataclass
class Maintenance:
    """Runs :func:`maintain` at most once per ``interval_s``, from the writer's thread."""

    interval_s: float
    retention_s: float
    _last: float = field(default_factory=time.monotonic)
    runs: int = 0

    def run_if_due(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Maintain when due; True when it ran. A failure (another writer's maintenance holding
        the catalog, say) is logged and tried again at the next interval: the data is safe."""
        if time.monotonic() - self._last < self.interval_s:
            return False
        self._last = time.monotonic()
        try:
            maintain(con, retention_s=self.retention_s)
        except WarehouseError as exc:
            logger.warning("%s; trying again in %.0f s", exc, self.interval_s)
            return False
        self.runs += 1
        return True


def maintain(con: duckdb.DuckDBPyConnection, *, retention_s: float) -> None:
    """Flush inlined data, merge small files, expire old snapshots, delete unneeded files."""
    older = f"now() - to_microseconds({int(retention_s * 1_000_000)})"
    started = time.monotonic()
    try:
        con.execute(f"CALL ducklake_flush_inlined_data('{LAKE}')")
        con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')")
        con.execute(f"CALL ducklake_expire_snapshots('{LAKE}', older_than => {older})")
        con.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => {older})")
    except duckdb.Error as exc:
        raise WarehouseError(f"lake maintenance failed: {exc}") from exc
    logger.info("lake maintenance done in %.2f s", time.monotonic() - started)
