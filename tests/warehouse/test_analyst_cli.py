"""What analysts and finance run: `voicepulse export billing`, `voicepulse shell`, connect()."""

import csv
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import voicepulse
from tests.conftest import SettingsFactory
from tests.warehouse.envelopes import ACCOUNT_A, ACCOUNT_B, call_fact, records
from voicepulse.bus import InProcessBus
from voicepulse.settings import Settings
from warehouse.setup import build_sink

VOICEPULSE = [sys.executable, "-m", "voicepulse.cli"]


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    return subprocess.run(
        [*VOICEPULSE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def warehouse(settings_factory: SettingsFactory, bus: InProcessBus) -> Settings:
    """A warehouse with October calls for two subaccounts (one call not rated yet)."""
    settings = settings_factory()
    sink, con = build_sink(settings, bus, {})
    try:
        await sink.handle(
            records(
                [
                    call_fact("CA1", 2, duration=61, cost="0.0260"),
                    call_fact("CA2", 2, duration=30, cost=None),
                    call_fact("CA3", 2, duration=120, cost="0.0085", direction="inbound"),
                    call_fact("CA4", 2, account=ACCOUNT_B, duration=59, cost="0.0130"),
                ]
            )
        )
        await sink.flush()
    finally:
        con.close()
    return settings


def test_export_billing_writes_one_csv_per_subaccount(warehouse: Settings, tmp_path: Path) -> None:
    out = tmp_path / "invoices"
    result = _run(
        "export", "billing", "--month", "2026-10", "--format", "csv",
        "--out", str(out), "--data-dir", str(warehouse.data_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [
        f"billing-2026-10-{ACCOUNT_A}.csv",
        f"billing-2026-10-{ACCOUNT_B}.csv",
    ]
    assert "billing export" in result.stderr  # the progress bar
    with files[0].open() as file:
        lines = list(csv.DictReader(file))
    assert [(r["direction"], r["billed_minutes"], r["cost"], r["estimated"]) for r in lines] == [
        ("inbound", "2", "0.008500", "false"),
        ("outbound-api", "3", "0.040000", "true"),
    ]


def test_export_billing_to_parquet_for_chosen_accounts_keeps_decimals(
    warehouse: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "invoices"
    result = _run(
        "export", "billing", "--month", "2026-10", "--format", "parquet",
        "--account", ACCOUNT_B, "--out", str(out), "--data-dir", str(warehouse.data_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (only,) = out.iterdir()
    rows = duckdb.sql(f"SELECT account_sid, cost, typeof(cost) FROM '{only}'").fetchall()
    assert rows == [(ACCOUNT_B, Decimal("0.013000"), "DECIMAL(18,6)")]


def test_export_billing_of_an_empty_month_says_so(warehouse: Settings, tmp_path: Path) -> None:
    result = _run(
        "export", "billing", "--month", "2026-09", "--out", str(tmp_path / "x"),
        "--data-dir", str(warehouse.data_dir),
    )  # fmt: skip
    assert result.returncode == 1
    assert "no billing for 2026-09" in result.stderr
    bad = _run("export", "billing", "--month", "October", "--data-dir", str(warehouse.data_dir))
    assert bad.returncode == 1
    assert "--month must look like 2026-10" in bad.stderr


def test_shell_runs_statements_and_dot_commands_and_survives_errors(warehouse: Settings) -> None:
    script = "\n".join(
        [
            ".tables",
            "SELECT count(*) AS n",
            "FROM calls;",
            "SELEC nonsense;",
            ".mode json",
            "SELECT call_sid FROM calls WHERE account_sid = '" + ACCOUNT_B + "';",
            "INSERT INTO calls (call_sid) VALUES ('x');",
            ".quit",
            "SELECT 'never reached';",
        ]
    )
    result = _run("shell", "--data-dir", str(warehouse.data_dir), stdin=script)
    assert result.returncode == 1  # some statements failed
    assert "billing_monthly" in result.stdout
    assert "│     4 │" in result.stdout  # the count, in DuckDB's box rendering
    assert '[{"call_sid":"CA4"}]' in result.stdout
    assert "never reached" not in result.stdout
    errors = result.stderr.splitlines()
    assert any("syntax error" in e for e in errors)
    assert any("read-only" in e.lower() for e in errors)


def test_connect_is_read_only_and_sees_the_lake(warehouse: Settings) -> None:
    con = voicepulse.connect(data_dir=warehouse.data_dir)
    try:
        frame = con.sql("SELECT account_sid, count(*) AS calls FROM calls GROUP BY ALL").df()
        assert sorted(frame["calls"].tolist()) == [1, 3]
        with pytest.raises(duckdb.Error, match=r"read-only|read only"):
            con.execute("DELETE FROM calls")
    finally:
        con.close()
