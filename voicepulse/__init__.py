"""VoicePulse: call health, alerts and billing for ISVs running their customers' calls on Twilio.

For analysts: ``voicepulse.connect()`` returns a DuckDB connection with the warehouse attached
read-only, for notebooks and pandas; ``voicepulse.dataframe(con.sql(...))`` hands any result
to pandas, whatever its column types.
"""

from typing import TYPE_CHECKING, Any

from voicepulse.envelope import Envelope
from voicepulse.errors import VoicePulseError
from voicepulse.settings import Settings, load_settings

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

__all__ = ["Envelope", "Settings", "VoicePulseError", "connect", "dataframe", "load_settings"]

__version__ = "0.1.0"


def connect(**settings: Any) -> "duckdb.DuckDBPyConnection":
    """A read-only DuckDB connection to the warehouse (settings as for ``load_settings``)."""
    from warehouse.lake import open_lake

    return open_lake(load_settings(**settings), read_only=True)


def dataframe(relation: "duckdb.DuckDBPyRelation") -> "pd.DataFrame":
    """A query's result as a pandas DataFrame, for every DuckDB type (``relation.df()`` alone
    fails on some, such as UHUGEINT or TIME WITH TIME ZONE: those come through Arrow)."""
    from warehouse.render import dataframe as to_frame

    return to_frame(relation)
