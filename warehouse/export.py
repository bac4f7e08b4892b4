"""Invoice-ready billing exports: one file per subaccount for one month, CSV or Parquet.

Each file holds the subaccount's ``billing_monthly`` lines (one per direction, call type and
currency) with the tenant's name; money stays DECIMAL (Parquet) or its exact decimal text (CSV).
A line whose cost includes calls not yet rated by Twilio says so in ``estimated``.
"""

import logging
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Literal

import duckdb
from tqdm import tqdm

from voicepulse.errors import ConfigError, WarehouseError

__all__ = ["Format", "export_billing", "parse_month"]

logger = logging.getLogger(__name__)

Format = Literal["csv", "parquet"]
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_ACCOUNT = re.compile(r"^AC[0-9a-fA-F]{32}$")

_LINES = """
SELECT
    b.account_sid,
    t.name AS tenant_name,
    b.parent_account_sid,
    b.month,
    b.direction,
    b.call_type,
    b.currency,
    b.calls,
    b.answered,
    b.talk_seconds,
    b.billed_minutes,
    b.cost,
    b.estimated_cost,
    b.estimated_calls,
    b.estimated
FROM billing_monthly AS b
LEFT JOIN tenants AS t ON t.account_sid = b.account_sid
WHERE b.scope = 'subaccount' AND b.month = {month} AND b.account_sid = {account}
ORDER BY b.direction, b.call_type, b.currency
"""


def parse_month(text: str) -> date:
    """``2026-10`` as the first day of that month."""
    match = _MONTH.match(text)
    if not match or not 1 <= int(match[2]) <= 12:
        raise ConfigError(f"--month must look like 2026-10, not {text!r}")
    return date(int(match[1]), int(match[2]), 1)


def export_billing(
    con: duckdb.DuckDBPyConnection,
    month: date,
    fmt: Format,
    out_dir: Path,
    *,
    accounts: Sequence[str] = (),
    progress: bool = True,
) -> list[Path]:
    """Write one file per subaccount billed in ``month`` (or only ``accounts``); return them."""
    for account in accounts:
        if not _ACCOUNT.match(account):
            raise ConfigError(f"not an account SID: {account!r}")
    billed = _billed_accounts(con, month)
    chosen = [a for a in billed if not accounts or a in accounts]
    missing = sorted(set(accounts) - set(billed))
    if missing:
        logger.warning("no billing in %s for %s", month.strftime("%Y-%m"), ", ".join(missing))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for account in tqdm(chosen, desc="billing export", unit="file", disable=not progress):
        path = out_dir / f"billing-{month:%Y-%m}-{account}.{fmt}"
        _copy(con, account, month, fmt, path)
        written.append(path)
    return written


def _billed_accounts(con: duckdb.DuckDBPyConnection, month: date) -> list[str]:
    rows = con.sql(
        "SELECT DISTINCT account_sid FROM billing_monthly "
        "WHERE scope = 'subaccount' AND month = ? ORDER BY 1",
        params=[month],
    ).fetchall()
    return [str(account) for (account,) in rows]


def _copy(
    con: duckdb.DuckDBPyConnection, account: str, month: date, fmt: Format, path: Path
) -> None:
    query = _LINES.format(month=f"DATE '{month.isoformat()}'", account=f"'{account}'")
    target = str(path).replace("'", "''")
    options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet"
    try:
        con.execute(f"COPY ({query}) TO '{target}' ({options})")
    except duckdb.Error as exc:
        raise WarehouseError(f"exporting the billing of {account} failed: {exc}") from exc
