"""Warehouse: the DuckLake schema, the batching sink, and analyst access."""

from warehouse.lake import LAKE, open_lake
from warehouse.schema import migrate
from warehouse.sink import WarehouseSink
from warehouse.tables import SINK_TOPICS

__all__ = ["LAKE", "SINK_TOPICS", "WarehouseSink", "migrate", "open_lake"]
