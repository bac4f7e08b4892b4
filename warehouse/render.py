"""Query results for people and programs: a table, CSV, JSON, or a pandas DataFrame.

Every type a DuckDB query can return is rendered, nested ones (LIST, STRUCT, MAP, UNION,
arrays) included: ``voicepulse sql``, ``voicepulse shell`` and :func:`dataframe` share these
rules, so a query that prints in one prints in all.

- CSV: scalars as Python spells them (``str``); nested values as JSON text in their cell.
- JSON: one object per row. Integers beyond 64 bits, NaN and infinities, and everything JSON
  has no type for (DECIMAL, UUID, BLOB, intervals, times with a zone) become strings, so
  nothing is lost or silently turned into ``null``; map keys become strings.
- DataFrame: NumPy types where DuckDB converts them; for a result it cannot (UHUGEINT,
  BIGNUM, TIME WITH TIME ZONE, dates beyond pandas' range), the whole frame comes through
  Arrow with ``pd.ArrowDtype`` columns.
"""

import csv
import datetime
import math
import warnings
from collections.abc import Mapping
from typing import IO, Any, Literal

import duckdb
import orjson
import pandas as pd
import pyarrow as pa

__all__ = ["Format", "dataframe", "jsonable", "write_relation"]

Format = Literal["table", "csv", "json"]

_INT64 = range(-(2**63), 2**63)


def write_relation(
    relation: duckdb.DuckDBPyRelation, fmt: Format, out: IO[str], *, indent: bool = True
) -> None:
    """Write a query's result to ``out`` in ``fmt``."""
    if fmt == "table":
        out.write(str(relation))  # DuckDB's box rendering; long results elided
        return
    columns = relation.columns
    rows = relation.fetchall()
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([_csv_cell(value) for value in row] for row in rows)
        return
    docs = [dict(zip(columns, (jsonable(v) for v in row), strict=True)) for row in rows]
    option = orjson.OPT_INDENT_2 if indent else 0
    out.write(orjson.dumps(docs, option=option).decode() + "\n")


def jsonable(value: Any) -> Any:
    """``value`` (as DuckDB's Python client returns it) in JSON's types, losing nothing."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return str(value)  # Decimal, UUID, timedelta, time with a zone, ...


def _csv_cell(value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple):
        return orjson.dumps(jsonable(value)).decode()
    return value


def dataframe(relation: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """The result as a pandas DataFrame, whatever its column types (see the module doc)."""
    try:
        with warnings.catch_warnings():
            # DuckDB's own conversion of zoned timestamps uses a pandas call that pandas 3
            # deprecates; it is DuckDB's to change, and the frame is right.
            warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
            return relation.df()
    except (duckdb.NotImplementedException, duckdb.ConversionException):
        table: pa.Table = relation.arrow().read_all()
        frame: pd.DataFrame = table.to_pandas(types_mapper=pd.ArrowDtype)
        return frame
