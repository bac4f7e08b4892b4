"""Parsing the query parameters the fake accepts, the way Twilio reads them."""

import re
from datetime import UTC, date, datetime, timedelta

__all__ = ["BadParameter", "api_date", "insights_time", "page_size"]

_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class BadParameter(ValueError):
    """A query parameter Twilio would refuse with 400 (error 20001)."""


def api_date(value: str, name: str) -> date:
    """Api v2010 date filters: ``YYYY-MM-DD``, or a datetime (the SDK sends ``...T00:00:00Z``)
    of which only the UTC date counts (date granularity)."""
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value).astimezone(UTC).date()
    except ValueError as exc:
        raise BadParameter(f"{name} must be a date (YYYY-MM-DD): {value!r}") from exc


def insights_time(value: str, name: str, now: datetime) -> datetime:
    """Insights times: relative (``30m``, ``4h``, ``7d``, ``1w``: before now) or ISO 8601."""
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadParameter(f"{name} must be ISO 8601 or like 4h, 30m, 7d: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def page_size(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    try:
        size = int(value)
    except ValueError as exc:
        raise BadParameter(f"PageSize must be an integer: {value!r}") from exc
    if not 1 <= size <= maximum:
        raise BadParameter(f"PageSize must be between 1 and {maximum}: {size}")
    return size
