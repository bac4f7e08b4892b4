"""Opening the warehouse for writing: migrate, write the configuration tables, build the sink."""

import logging
from collections.abc import Mapping

import duckdb

from voicepulse.metrics import StageCounters
from voicepulse.settings import Settings
from voicepulse.types import Bus
from warehouse.billing import write_billing_config
from warehouse.lake import open_lake
from warehouse.maintenance import Maintenance
from warehouse.schema import migrate
from warehouse.sink import WarehouseSink
from warehouse.tenants import TenantLike, write_tenants

__all__ = ["build_sink"]

logger = logging.getLogger(__name__)


def build_sink(
    settings: Settings,
    bus: Bus,
    tenants: Mapping[str, TenantLike],
    *,
    metrics: StageCounters | None = None,
) -> tuple[WarehouseSink, duckdb.DuckDBPyConnection]:
    """The sink over a new writer connection (the caller closes it after the sink stopped),
    counting its flushes and dead letters on ``metrics`` when given.

    On start: the schema is migrated in place, then the rate card, tolerances and tenants are
    written, so the billing views price with what is configured now.
    """
    con = open_lake(settings)
    try:
        # A batch is tens of thousands of rows: on more threads DuckDB spends more time handing
        # it between them than it saves (measured: bench/README.md, "Warehouse sink").
        con.execute(f"SET threads = {int(settings.warehouse_writer_threads)}")
        version = migrate(con)
        logger.info("warehouse at schema version %04d", version)
        write_billing_config(con, settings)
        write_tenants(con, tenants)
    except BaseException:
        con.close()
        raise
    maintenance = Maintenance(
        interval_s=settings.warehouse_maintenance_interval_s,
        retention_s=settings.warehouse_snapshot_retention_s,
    )
    sink = WarehouseSink(
        con,
        bus,
        batch_size=settings.sink_batch_size,
        flush_interval_s=settings.sink_flush_interval_s,
        maintenance=maintenance,
        metrics=metrics,
    )
    return sink, con
