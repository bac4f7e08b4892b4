"""VoicePulse's exceptions.

    VoicePulseError                 base; ``retriable`` says whether trying again may help
    ├── ConfigError                 settings, tenants file or extension missing: fix and restart
    ├── BusError                    the bus could not publish, consume or commit
    │   ├── BusUnavailable          the broker did not answer in time (retriable)
    │   └── TransactionAborted      a transaction was rolled back: restore state, redo (retriable)
    ├── WarehouseError              DuckDB/DuckLake refused a statement
    └── BadMessage                  a record that cannot be parsed: dead-letter it, keep going

Library errors (aiokafka, duckdb) are translated into these at one boundary, with
``raise ... from exc`` so that the original stays in the traceback.
"""

__all__ = [
    "BadMessage",
    "BusError",
    "BusUnavailable",
    "ConfigError",
    "TransactionAborted",
    "VoicePulseError",
    "WarehouseError",
]


class VoicePulseError(Exception):
    """Base of every error VoicePulse raises on purpose."""

    retriable: bool = False


class ConfigError(VoicePulseError):
    """The configuration cannot work; the message says what to change."""


class BusError(VoicePulseError):
    """Publishing, consuming or committing on the bus failed."""


class BusUnavailable(BusError):
    """The broker did not answer within the deadline."""

    retriable = True


class TransactionAborted(BusError):
    """A Kafka transaction failed and was rolled back; the producer is ready for the next one.

    State built from what the transaction was to commit is ahead of Kafka: restore it from the
    changelog and rewind the input to the committed offsets before going on.
    """

    retriable = True


class WarehouseError(VoicePulseError):
    """The warehouse refused a statement or could not be opened."""


class BadMessage(VoicePulseError):
    """A record that cannot be decoded; it belongs on the dead-letter topic."""
