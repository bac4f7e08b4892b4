"""The health metrics recomputed in batch by the product's SQL (:func:`warehouse.backfill.
health_rows_sql`, what ``voicepulse backfill-health`` writes) over the deduplicated call facts
and debugger events: the streaming rows must equal this."""

from datetime import UTC
from typing import Any

import duckdb

from voicepulse.envelope import Envelope
from warehouse.backfill import health_rows_sql

Key = tuple[str, str, str]

_FACTS = """
CREATE TABLE fact_versions (
    account_sid VARCHAR, call_sid VARCHAR, version INTEGER, status VARCHAR, terminal BOOLEAN,
    answered BOOLEAN, grp VARCHAR, from_number VARCHAR, created_at VARCHAR, ended_at VARCHAR,
    call_duration_s INTEGER, queue_time_ms BIGINT, closed_by_timeout BOOLEAN,
    attestation VARCHAR, trunk_cps_rejection BOOLEAN, last_event_at VARCHAR
);
CREATE TABLE debugger_deliveries (
    account_sid VARCHAR, sid VARCHAR, level VARCHAR, code VARCHAR, at_time VARCHAR
);
"""

# The last version of each call and one copy of each debugger event, shaped as the warehouse's
# calls and debugger_events tables (UTC TIMESTAMPs).
_DEDUPED = """
CREATE MACRO utc(t) AS t::TIMESTAMPTZ::TIMESTAMP;
CREATE VIEW calls AS
    SELECT account_sid, grp AS direction_group, status, terminal, answered, from_number,
        attestation, utc(created_at) AS created_at, utc(ended_at) AS ended_at,
        utc(last_event_at) AS last_event_at, call_duration_s, queue_time_ms, closed_by_timeout,
        trunk_cps_rejection
    FROM fact_versions
    QUALIFY row_number() OVER (PARTITION BY call_sid ORDER BY version DESC) = 1;
CREATE VIEW debugger_events AS
    SELECT DISTINCT ON (sid) account_sid, level, code AS error_code, utc(at_time) AS event_time
    FROM debugger_deliveries;
"""


def _load(
    con: duckdb.DuckDBPyConnection, facts: list[dict[str, Any]], deliveries: list[Envelope]
) -> None:
    con.execute(_FACTS)
    con.executemany(
        "INSERT INTO fact_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                f["account_sid"],
                f["call_sid"],
                f["version"],
                f["status"],
                f["terminal"],
                f["answered"],
                f["direction_group"],
                f["from"],
                f["created_at"],
                f["ended_at"],
                f["call_duration_s"],
                f["queue_time_ms"],
                f["closed_by_timeout"],
                f["attestation"],
                f["trunk_cps_rejection"],
                f["last_event_at"],
            )
            for f in facts
        ],
    )
    debugger = [
        (
            e.account_sid,
            e.fields["sid"],
            e.fields["level"],
            e.fields["error_code"],
            e.fields["timestamp"],
        )
        for e in deliveries
        if e.type == "debugger-event"
    ]
    if debugger:
        con.executemany("INSERT INTO debugger_deliveries VALUES (?, ?, ?, ?, ?)", debugger)
    con.execute(_DEDUPED)


def recompute(
    facts: list[dict[str, Any]], deliveries: list[Envelope], timeout_s: int
) -> dict[Key, dict[str, Any]]:
    """Rows per (account or ISV, group, window start ISO) from SQL over the facts' versions."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        _load(con, facts, deliveries)
        return rows_by_key(con.sql(health_rows_sql("calls", "debugger_events", timeout_s)))
    finally:
        con.close()


def rows_by_key(relation: duckdb.DuckDBPyRelation) -> dict[Key, dict[str, Any]]:
    """Health rows (with ``account_sid``, ``direction_group``, ``window_start`` as a naive UTC
    TIMESTAMP) by (account or ISV, group, window start ISO), as the streaming rows are keyed."""
    names = relation.columns
    rows: dict[Key, dict[str, Any]] = {}
    for values in relation.fetchall():
        row = dict(zip(names, values, strict=True))
        row.setdefault("late_events", 0)  # the batch counts every event: none comes late
        start = row["window_start"].replace(tzinfo=UTC).isoformat()
        rows[(row["account_sid"], row["direction_group"], start)] = row
    return rows
