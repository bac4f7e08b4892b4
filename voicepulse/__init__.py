"""VoicePulse: call health, alerts and billing for ISVs running their customers' calls on Twilio.

For analysts: ``voicepulse.connect()`` returns a DuckDB connection with the warehouse attached
read-only, for notebooks and pandas.
"""

from typing import TYPE_CHECKING, Any

from voicepulse.envelope import Envelope
from voicepulse.errors import VoicePulseError
from voicepulse.settings import Settings, load_settings

if TYPE_CHECKING:
    import duckdb

__all__ = ["Envelope", "Settings", "VoicePulseError", "connect", "load_settings"]

__version__ = "0.1.0"


def connect(**settings: Any) -> "duckdb.DuckDBPyConnection":
    """A read-only DuckDB connection to the warehouse (settings as for ``load_settings``)."""
    from warehouse.lake import open_lake

    return open_lake(load_settings(**settings), read_only=True)
