"""Typed readers for envelope fields: each returns the column value or raises ``ValueError``.

A field that is missing or ``None`` reads as ``None`` (messages.py: a field Twilio did not give is
``None``); a field of the wrong type is a schema violation, and its envelope is dead-lettered.
"""

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import orjson

__all__ = [
    "boolean",
    "day",
    "int_counts",
    "int_list",
    "integer",
    "json_text",
    "lenient_timestamp",
    "money",
    "number",
    "required",
    "str_counts",
    "text",
    "text_list",
    "timestamp",
    "utc_naive",
]

MONEY_SCALE = Decimal("0.000001")


def required(value: Any, name: str) -> Any:
    if value is None:
        raise ValueError(f"{name} is required")
    return value


def utc_naive(value: str) -> datetime:
    """An ISO 8601 time as naive UTC (the warehouse's TIMESTAMP convention)."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed
    return parsed.astimezone(UTC).replace(tzinfo=None)


def timestamp(fields: Mapping[str, Any], name: str) -> datetime | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is not an ISO 8601 string: {value!r}")
    return utc_naive(value)


def lenient_timestamp(fields: Mapping[str, Any], name: str) -> datetime | None:
    """A time that the producer already flags when Twilio sent it malformed: None if bad."""
    try:
        return timestamp(fields, name)
    except ValueError:
        return None


def day(fields: Mapping[str, Any], name: str) -> date | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a date string: {value!r}")
    return date.fromisoformat(value[:10])


def text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{name} is not a string: {value!r}")


def integer(fields: Mapping[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None:
        return None
    if not _is_int(value):
        raise ValueError(f"{name} is not an integer: {value!r}")
    return int(value)


def number(fields: Mapping[str, Any], name: str) -> float | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is not a number: {value!r}")
    return float(value)


def boolean(fields: Mapping[str, Any], name: str) -> bool | None:
    value = fields.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{name} is not a boolean: {value!r}")


def money(fields: Mapping[str, Any], name: str) -> Decimal | None:
    """A decimal string (never a float) as a DECIMAL(18, 6) value."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int):
        raise ValueError(f"{name} is not a decimal string: {value!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{name} is not a decimal: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"{name} is not a finite decimal: {value!r}")
    return amount.quantize(MONEY_SCALE, rounding=ROUND_HALF_EVEN)


def text_list(fields: Mapping[str, Any], name: str) -> list[str] | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} is not a list of strings: {value!r}")
    return value


def int_list(fields: Mapping[str, Any], name: str) -> list[int] | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(_is_int(v) for v in value):
        raise ValueError(f"{name} is not a list of integers: {value!r}")
    return value


def str_counts(fields: Mapping[str, Any], name: str) -> list[tuple[str, int]] | None:
    """A ``{key: count}`` object as MAP(VARCHAR, BIGINT) entries."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(_is_int(v) for v in value.values()):
        raise ValueError(f"{name} is not an object of counts: {value!r}")
    return [(str(k), int(v)) for k, v in value.items()]


def int_counts(fields: Mapping[str, Any], name: str) -> list[tuple[int, int]] | None:
    """A ``{"index": count}`` object (index a decimal string) as MAP(INTEGER, BIGINT) entries."""
    entries = str_counts(fields, name)
    if entries is None:
        return None
    return [(int(k), v) for k, v in entries]


def json_text(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value).decode()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
