"""Billing views over real DuckLake rows: DECIMAL money, estimates that clear, reconciliation."""

import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import (
    ACCOUNT_A,
    ACCOUNT_B,
    PARENT,
    T0,
    call_fact,
    call_resource,
    records,
    usage,
)
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.errors import ConfigError
from voicepulse.settings import Settings
from warehouse.billing import load_rate_card, write_billing_config
from warehouse.lake import open_lake
from warehouse.schema import migrate
from warehouse.sink import WarehouseSink

MONTHLY = (
    "SELECT calls, answered, talk_seconds, billed_minutes, cost, currency, estimated "
    "FROM billing_monthly WHERE scope = ? AND account_sid = ? AND direction = ? "
    "AND month = DATE '2026-10-01'"
)


async def _write(con: duckdb.DuckDBPyConnection, bus: InProcessBus, envs: list[Envelope]) -> None:
    sink = WarehouseSink(con, bus, flush_interval_s=3600)
    await sink.handle(records(envs))
    await sink.flush()


def _monthly(con: duckdb.DuckDBPyConnection, scope: str, account: str, direction: str) -> Any:
    return con.sql(MONTHLY, params=[scope, account, direction]).fetchall()


def _traffic() -> list[Envelope]:
    return [
        call_fact("CA1", 2, duration=61, cost="0.0260"),
        call_fact("CA2", 2, duration=30, cost=None),  # answered, not rated yet
        call_fact("CA3", 2, status="busy", duration=None, cost=None),
        call_fact("CA4", 2, duration=120, cost="0.0085", direction="inbound"),
        call_fact("CA5", 2, account=ACCOUNT_B, duration=59, cost="0.0130"),
        call_fact("CA6", 1, status="ringing", duration=None, cost=None),  # not an attempt yet
    ]


async def test_billing_prices_unrated_calls_and_clears_the_estimate_when_rated(
    lake: duckdb.DuckDBPyConnection, lake_settings: Settings, bus: InProcessBus
) -> None:
    write_billing_config(lake, lake_settings)
    await _write(lake, bus, _traffic())

    outbound = _monthly(lake, "subaccount", ACCOUNT_A, "outbound-api")
    assert outbound == [(3, 2, 91, 3, Decimal("0.040000"), "USD", True)]
    assert _monthly(lake, "subaccount", ACCOUNT_A, "inbound") == [
        (1, 1, 120, 2, Decimal("0.008500"), "USD", False)
    ]
    assert _monthly(lake, "parent", PARENT, "outbound-api") == [
        (4, 3, 150, 4, Decimal("0.053000"), "USD", True)
    ]
    types = lake.sql(
        "SELECT typeof(cost), typeof(billed_minutes), typeof(calls) FROM billing_monthly LIMIT 1"
    ).fetchone()
    assert types == ("DECIMAL(18,6)", "BIGINT", "BIGINT")

    await _write(lake, bus, [call_resource("CA2", "0.0200")])

    assert _monthly(lake, "subaccount", ACCOUNT_A, "outbound-api") == [
        (3, 2, 91, 3, Decimal("0.046000"), "USD", False)
    ]


async def test_the_most_specific_rate_of_the_rate_card_file_wins(
    tmp_path: Path, settings_factory: SettingsFactory, bus: InProcessBus
) -> None:
    settings = settings_factory(
        billing_rate_card_file=_rate_card(tmp_path, 'call_type = "carrier"')
    )
    con = open_lake(settings)
    try:
        migrate(con)
        write_billing_config(con, settings)
        await _write(
            con,
            bus,
            [
                call_fact("CA1", 1, duration=130, cost=None),
                call_fact("CA2", 1, account=ACCOUNT_B, duration=10, cost=None),
                call_fact("CA3", 1, account=ACCOUNT_B, duration=10, cost=None, call_type="sip"),
            ],
        )
        costs = con.sql(
            "SELECT call_sid, cost, currency, estimated FROM billed_calls ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert costs == [
        ("CA1", Decimal("0.090000"), "USD", True),
        ("CA2", Decimal("0.020000"), "USD", True),
        ("CA3", Decimal("0.010000"), "USD", True),
    ]


def test_a_float_in_the_rate_card_is_refused(
    tmp_path: Path, settings_factory: SettingsFactory
) -> None:
    card = tmp_path / "rates.toml"
    card.write_text("default_per_minute = 0.014\n")
    with pytest.raises(ConfigError, match="decimal string"):
        load_rate_card(settings_factory(billing_rate_card_file=card))


async def test_usage_reconciliation_flags_differences_beyond_the_tolerance(
    lake: duckdb.DuckDBPyConnection, lake_settings: Settings, bus: InProcessBus
) -> None:
    write_billing_config(lake, lake_settings)
    await _write(
        lake,
        bus,
        [
            *_traffic(),
            call_resource("CA2", "0.0200"),
            usage(ACCOUNT_A, "2026-10-05", "5", "0.0545"),
            usage(ACCOUNT_B, "2026-10-05", "3", "0.0130"),
            usage(ACCOUNT_B, "2026-10-05", "3", "0.0130", category="calls-outbound"),
        ],
    )
    rows = lake.sql(
        "SELECT account_sid, our_minutes, twilio_minutes, minutes_diff, cost_diff, status, "
        "flagged FROM usage_reconciliation ORDER BY account_sid"
    ).fetchall()
    assert rows == [
        (ACCOUNT_A, Decimal("5"), Decimal("5"), Decimal("0"), Decimal("0"), "ok", False),
        (ACCOUNT_B, Decimal("1"), Decimal("3"), Decimal("-2"), Decimal("0"), "mismatch", True),
    ]


async def test_the_one_pass_billing_views_give_what_0005_gave(
    tmp_path: Path, settings_factory: SettingsFactory, bus: InProcessBus
) -> None:
    settings = settings_factory(
        billing_rate_card_file=_rate_card(tmp_path, 'direction = "inbound"')
    )
    rng = random.Random(7)
    traffic = [
        call_fact(
            f"CA{i}",
            rng.randint(1, 3),
            account=rng.choice([ACCOUNT_A, ACCOUNT_B]),
            created=T0 + timedelta(hours=rng.randint(-48, 48)),
            status=rng.choice(["completed", "completed", "busy", "no-answer", "ringing"]),
            duration=rng.choice([None, 0, 12, 61, 600]),
            cost=rng.choice([None, "0.0130", "0.0260"]),
            direction=rng.choice(["outbound-api", "inbound", "outbound-dial"]),
            call_type=rng.choice([None, "carrier", "sip"]),
        )
        for i in range(200)
    ]
    traffic += [call_resource(f"CA{i}", "0.0390") for i in range(0, 200, 7)]
    traffic += [usage(ACCOUNT_A, "2026-10-05", "40", "0.5000")]
    views = ("billed_calls", "billing_daily", "billing_monthly", "usage_reconciliation")
    con = open_lake(settings)
    try:
        migrate(con, target=8)
        write_billing_config(con, settings)
        await _write(con, bus, traffic)
        before = [_view(con, view) for view in views]
        migrate(con)
        after = [_view(con, view) for view in views]
    finally:
        con.close()
    assert after == before
    assert len(before[1][1]) > 20


def _view(
    con: duckdb.DuckDBPyConnection, view: str
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    described = con.sql(f"DESCRIBE {view}").fetchall()
    return described, con.sql(f"SELECT * FROM {view} ORDER BY ALL").fetchall()


def _rate_card(tmp_path: Path, account_a_rule: str) -> Path:
    """A rate card: 0.01/min by default, carrier calls 0.02, and 0.03 for account A's calls
    that match ``account_a_rule`` (a TOML line)."""
    card = tmp_path / "rates.toml"
    card.write_text(
        'currency = "usd"\ndefault_per_minute = "0.0100"\n'
        '[[rates]]\ncall_type = "carrier"\nper_minute = "0.0200"\n'
        f'[[rates]]\naccount_sid = "{ACCOUNT_A}"\n{account_a_rule}\nper_minute = "0.0300"\n'
    )
    return card
