"""The health metrics recomputed in DuckDB SQL, in batch, over the deduplicated call facts and
debugger events: the streaming rows must equal this."""

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import duckdb

from voicepulse.envelope import Envelope
from voicepulse.messages import QUEUE_TIME_GAMMA

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

_DEDUPED = """
CREATE MACRO minute(t) AS epoch(t::TIMESTAMPTZ)::BIGINT // 60 * 60;
CREATE VIEW f AS SELECT * FROM fact_versions
    QUALIFY row_number() OVER (PARTITION BY call_sid ORDER BY version DESC) = 1;
CREATE VIEW dbg AS SELECT DISTINCT ON (sid) * FROM debugger_deliveries;
"""


def _queries(keys: str, timeout_s: int) -> dict[str, str]:
    g = repr(QUEUE_TIME_GAMMA)
    ln_gamma = f"ln({g})"
    return {
        "ends": f"""SELECT {keys}, minute(ended_at) AS w,
            count(*), count(*) FILTER (status = 'completed'), count(*) FILTER (status = 'busy'),
            count(*) FILTER (status = 'no-answer'), count(*) FILTER (status = 'failed'),
            count(*) FILTER (status = 'canceled'), count(*) FILTER (answered),
            coalesce(sum(call_duration_s) FILTER (answered), 0),
            count(*) FILTER (answered AND call_duration_s <= 12),
            count(*) FILTER (trunk_cps_rejection)
            FROM f WHERE terminal GROUP BY ALL""",
        "unknown": f"""SELECT {keys},
            (epoch(last_event_at::TIMESTAMPTZ)::BIGINT + {timeout_s}) // 60 * 60 AS w,
            count(*), count(*) FILTER (trunk_cps_rejection)
            FROM f WHERE closed_by_timeout GROUP BY ALL""",
        "seconds": f"""SELECT {keys}, minute(created_at) AS w,
            epoch(created_at::TIMESTAMPTZ)::BIGINT % 60, count(*)
            FROM f WHERE created_at IS NOT NULL GROUP BY ALL""",
        "queue": f"""WITH q AS (
                SELECT {keys}, minute(created_at) AS w, queue_time_ms AS v,
                CASE WHEN queue_time_ms <= 0 THEN -1
                     ELSE ceil(ln(queue_time_ms) / {ln_gamma})::INTEGER END AS b
                FROM f WHERE grp = 'outbound' AND queue_time_ms IS NOT NULL),
            h AS (SELECT account_sid, grp, w, b, count(*) AS n FROM q GROUP BY ALL),
            c AS (SELECT *, sum(n) OVER (PARTITION BY account_sid, grp, w ORDER BY b) AS running,
                  sum(n) OVER (PARTITION BY account_sid, grp, w) AS total FROM h),
            p AS (SELECT account_sid, grp, w,
                  min(b) FILTER (WHERE running >= greatest(1, (50 * total + 99) // 100)) AS b50,
                  min(b) FILTER (WHERE running >= greatest(1, (95 * total + 99) // 100)) AS b95
                  FROM c GROUP BY ALL),
            s AS (SELECT account_sid, grp, w, count(*) AS n, sum(v) AS total, max(v) AS top
                  FROM q GROUP BY ALL)
            SELECT s.account_sid, s.grp, s.w, s.n, s.total, s.top,
              least(CASE WHEN b50 = -1 THEN 0
                    ELSE 2 * pow({g}, b50) / ({g} + 1) END, s.top),
              least(CASE WHEN b95 = -1 THEN 0
                    ELSE 2 * pow({g}, b95) / ({g} + 1) END, s.top)
            FROM s JOIN p USING (account_sid, grp, w)""",
        "from_numbers": f"""SELECT {keys}, minute(ended_at) AS w, from_number, count(*)
            FROM f WHERE terminal AND grp = 'outbound' GROUP BY ALL""",
        "attestation": f"""SELECT {keys}, minute(ended_at) AS w, attestation, count(*)
            FROM f WHERE terminal AND grp = 'inbound' GROUP BY ALL""",
        "debugger": f"""SELECT {keys.replace("grp", "'outbound' AS grp")}, minute(at_time) AS w,
            level, code, count(*) FROM dbg GROUP BY ALL""",
    }


def _blank() -> dict[str, Any]:
    row: dict[str, Any] = {
        name: 0
        for name in [
            "attempts",
            "completed",
            "busy",
            "no_answer",
            "failed",
            "canceled",
            "answered",
            "unknown",
            "talk_seconds",
            "short_calls",
            "trunk_cps_rejections",
            "queue_time_count",
            "queue_time_sum_ms",
            "late_events",
        ]
    }
    row.update(
        queue_time_max_ms=None,
        queue_time_p50_ms=None,
        queue_time_p95_ms=None,
        cps_per_second=[0] * 60,
        from_numbers={},
        attestation={},
        debugger_errors={},
        debugger_warnings={},
    )
    return row


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
        rows: dict[Key, dict[str, Any]] = defaultdict(_blank)
        for keys in ("account_sid, grp", "'ISV' AS account_sid, grp"):
            for name, sql in _queries(keys, timeout_s).items():
                for record in con.execute(sql).fetchall():
                    _fold(rows, name, record)
        return dict(rows)
    finally:
        con.close()


def _fold(rows: dict[Key, dict[str, Any]], name: str, record: tuple[Any, ...]) -> None:
    account, grp, w, *values = record
    row = rows[(account, grp, datetime.fromtimestamp(int(w), UTC).isoformat())]
    if name == "ends":
        for field, value in zip(
            [
                "attempts",
                "completed",
                "busy",
                "no_answer",
                "failed",
                "canceled",
                "answered",
                "talk_seconds",
                "short_calls",
                "trunk_cps_rejections",
            ],
            values,
            strict=True,
        ):
            row[field] += value
    elif name == "unknown":
        row["unknown"] += values[0]
        row["trunk_cps_rejections"] += values[1]
    elif name == "seconds":
        row["cps_per_second"][values[0]] += values[1]
    elif name == "queue":
        n, total, top, p50, p95 = values
        row.update(queue_time_count=n, queue_time_sum_ms=total, queue_time_max_ms=top)
        row.update(queue_time_p50_ms=p50, queue_time_p95_ms=p95)
    elif name in ("from_numbers", "attestation"):
        row[name][values[0]] = values[1]
    else:
        level, code, count = values
        row["debugger_errors" if level == "error" else "debugger_warnings"][code] = count
    row["calls_created"] = sum(row["cps_per_second"])
    row["cps_peak"] = max(row["cps_per_second"])
