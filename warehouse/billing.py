"""Billing configuration in the lake: the rate card for unrated calls and the tolerances.

The views (migration 0003) price a call Twilio has not rated yet from the ``rate_card`` table
and flag it ``estimated``; the sink rewrites that table (and ``billing_settings``) at start from
the settings, so the views always price with the configured card.

A rate card file is TOML::

    currency = "USD"
    default_per_minute = "0.0140"     # every call the rates below do not match

    [[rates]]                         # any of account_sid, direction, call_type; the most
    direction = "outbound-api"        # specific match wins
    call_type = "sip"
    per_minute = "0.0040"
"""

import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb

from voicepulse.errors import ConfigError, WarehouseError
from voicepulse.settings import Settings

__all__ = ["Rate", "load_rate_card", "write_billing_config"]

ANY = "*"


@dataclass(frozen=True, slots=True)
class Rate:
    """A price per billed minute for the calls it matches (``*`` matches anything)."""

    per_minute: Decimal
    currency: str
    account_sid: str = ANY
    direction: str = ANY
    call_type: str = ANY

    @property
    def specificity(self) -> int:
        return sum(v != ANY for v in (self.account_sid, self.direction, self.call_type))


def load_rate_card(settings: Settings) -> list[Rate]:
    """The default rate from the settings, then the rates of the rate card file, if any."""
    currency = settings.billing_currency.upper()
    default = settings.billing_default_rate_per_minute
    rates: list[Rate] = []
    if settings.billing_rate_card_file is not None:
        doc = _read_toml(settings.billing_rate_card_file)
        currency = str(doc.get("currency", currency)).upper()
        default = _decimal(doc.get("default_per_minute", default), "default_per_minute")
        rates = [_rate(entry, currency) for entry in doc.get("rates", [])]
    return [Rate(default, currency), *rates]


def write_billing_config(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Replace the rate card and the reconciliation tolerances in the lake, in one commit."""
    rates = load_rate_card(settings)
    try:
        con.execute("BEGIN")
        con.execute("DELETE FROM rate_card")
        con.executemany(
            "INSERT INTO rate_card VALUES (?, ?, ?, ?, ?, ?)",
            [
                [r.account_sid, r.direction, r.call_type, r.per_minute, r.currency, r.specificity]
                for r in rates
            ],
        )
        con.execute("DELETE FROM billing_settings")
        con.executemany(
            "INSERT INTO billing_settings VALUES (?, ?)",
            [
                ["tolerance_minutes", settings.reconciliation_tolerance_minutes],
                ["tolerance_cost", settings.reconciliation_tolerance_cost],
            ],
        )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise WarehouseError(f"writing the billing configuration failed: {exc}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the rate card {path}: {exc}") from exc


def _rate(entry: Any, currency: str) -> Rate:
    if not isinstance(entry, dict) or "per_minute" not in entry:
        raise ConfigError(f"a rate card entry needs per_minute: {entry!r}")
    unknown = set(entry) - {"per_minute", "account_sid", "direction", "call_type"}
    if unknown:
        raise ConfigError(f"unknown rate card keys {sorted(unknown)}")
    return Rate(
        per_minute=_decimal(entry["per_minute"], "per_minute"),
        currency=currency,
        account_sid=str(entry.get("account_sid", ANY)),
        direction=str(entry.get("direction", ANY)),
        call_type=str(entry.get("call_type", ANY)),
    )


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, float):
        raise ConfigError(f'{name} must be a decimal string, not a float: write "{value}"')
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"{name} is not a decimal: {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"{name} must be a non-negative decimal: {value!r}")
    return amount
