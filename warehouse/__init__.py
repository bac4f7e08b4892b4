"""Warehouse: the DuckLake schema, the batching sink, billing, and analyst access."""

from warehouse.export import export_billing
from warehouse.lake import LAKE, open_lake
from warehouse.schema import migrate
from warehouse.setup import build_sink
from warehouse.sink import WarehouseSink
from warehouse.tables import SINK_TOPICS

__all__ = [
    "LAKE",
    "SINK_TOPICS",
    "WarehouseSink",
    "build_sink",
    "export_billing",
    "migrate",
    "open_lake",
]
