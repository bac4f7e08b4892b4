"""Health windows in batch: ``health_minute`` rows computed from the ``calls`` and
``debugger_events`` tables, for history the stream never saw on time (pulled calls of past days,
a backfill, a replay beyond the grace).

:func:`health_rows_sql` is the one definition of the metrics in SQL: the same as the stream's
(:mod:`processors.windows`; docs/metrics.md), and the processors' tests hold the stream to it.

:func:`backfill_health` writes them, and promises:

1. One row per window, always: a batch row (``source = 'batch'``) is written only in place of
   the stored row of its window, in the same DuckLake transaction, so nothing that sums
   ``health_minute`` (``health_hourly``, ``health_daily``) counts a window twice; the hours of
   the windows it writes or removes are rewritten in ``health_hour`` in that transaction.
2. In the range, each window ends up as the batch computes it, except that a stored row equal to
   the batch's in every count stays as it is: a streamed row the stream got right stays
   ``'stream'`` (with its ``late_events``). A streamed row that differs missed calls (they came
   after its grace or its horizon, or only the REST APIs told of them) and is replaced; a stored
   row of a window the batch finds empty is removed; ``late_events`` carries over.
3. Only settled windows: the range stops where the stream can still change a window (its end
   plus the grace, the dedupe horizon and the wall-clock lag, before now).
4. A commit that conflicts with the running sink is retried from the start; the sink retries
   its own. Running it twice changes nothing the second time.
"""

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from voicepulse.errors import WarehouseError
from voicepulse.messages import QUEUE_TIME_GAMMA
from warehouse.hourly import has_hours, refresh_hours

__all__ = ["BackfillResult", "backfill_health", "health_rows_sql", "settled_before"]

logger = logging.getLogger(__name__)

COMPARED = (
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
    "calls_created",
    "cps_peak",
    "cps_per_second",
    "queue_time_count",
    "queue_time_sum_ms",
    "queue_time_max_ms",
)
_MAPS = ("queue_time_hist", "from_numbers", "attestation", "debugger_errors", "debugger_warnings")


def health_rows_sql(calls: str, debugger: str, call_timeout_s: int) -> str:
    """A query of the health rows (subaccounts' and the ISV's) over the relations ``calls`` (one
    row per call: the columns of the ``calls`` table) and ``debugger`` (one row per event: those
    of ``debugger_events``), times as UTC TIMESTAMPs. Windows are keyed like the stream's:
    a call's status counts in the minute it ended (``unknown`` in the minute of its last event
    plus the call timeout), its creation and QueueTime in the minute it was created, a debugger
    event in the minute of its Timestamp (as ``outbound``). Times count by their whole second
    (a fraction is dropped, as the stream drops it)."""
    g = repr(QUEUE_TIME_GAMMA)
    return f"""
WITH
c AS (
    SELECT account_sid, direction_group AS grp, status, terminal, answered, from_number,
        attestation, created_at, ended_at, last_event_at, call_duration_s, queue_time_ms,
        closed_by_timeout, trunk_cps_rejection
    FROM {calls}
),
sc AS (SELECT * FROM c UNION ALL SELECT * REPLACE ('ISV' AS account_sid) FROM c),
d AS (SELECT account_sid, 'outbound' AS grp, level, error_code, event_time FROM {debugger}),
sd AS (SELECT * FROM d UNION ALL SELECT * REPLACE ('ISV' AS account_sid) FROM d),
ends AS (
    SELECT account_sid, grp, floor(epoch(ended_at))::BIGINT // 60 * 60 AS w,
        count(*) AS attempts,
        count(*) FILTER (status = 'completed') AS completed,
        count(*) FILTER (status = 'busy') AS busy,
        count(*) FILTER (status = 'no-answer') AS no_answer,
        count(*) FILTER (status = 'failed') AS failed,
        count(*) FILTER (status = 'canceled') AS canceled,
        count(*) FILTER (answered) AS answered,
        coalesce(sum(call_duration_s) FILTER (answered), 0) AS talk_seconds,
        count(*) FILTER (answered AND call_duration_s <= 12) AS short_calls,
        count(*) FILTER (trunk_cps_rejection) AS rejections
    FROM sc WHERE terminal GROUP BY ALL
),
unknowns AS (
    SELECT account_sid, grp,
        (floor(epoch(last_event_at))::BIGINT + {call_timeout_s}) // 60 * 60 AS w,
        count(*) AS unknown, count(*) FILTER (trunk_cps_rejection) AS rejections
    FROM sc WHERE closed_by_timeout GROUP BY ALL
),
seconds AS (
    SELECT account_sid, grp, w,
        list_transform(range(60), i -> coalesce(per[i], 0)::BIGINT) AS cps_per_second
    FROM (
        SELECT account_sid, grp, floor(epoch(created_at))::BIGINT // 60 * 60 AS w,
            histogram(floor(epoch(created_at))::BIGINT % 60) AS per
        FROM sc WHERE created_at IS NOT NULL GROUP BY ALL
    )
),
q AS (
    SELECT account_sid, grp, floor(epoch(created_at))::BIGINT // 60 * 60 AS w, queue_time_ms AS v,
        CASE WHEN queue_time_ms <= 0 THEN -1
             ELSE ceil(ln(queue_time_ms) / ln({g}))::INTEGER END AS b
    FROM sc WHERE grp = 'outbound' AND queue_time_ms IS NOT NULL AND created_at IS NOT NULL
),
qh AS (SELECT account_sid, grp, w, b, count(*) AS n FROM q GROUP BY ALL),
qc AS (
    SELECT *, sum(n) OVER (PARTITION BY account_sid, grp, w ORDER BY b) AS running,
        sum(n) OVER (PARTITION BY account_sid, grp, w) AS total
    FROM qh
),
qp AS (
    SELECT account_sid, grp, w,
        min(b) FILTER (WHERE running >= greatest(1, (50 * total + 99) // 100)) AS b50,
        min(b) FILTER (WHERE running >= greatest(1, (95 * total + 99) // 100)) AS b95,
        map_from_entries(list((b, n) ORDER BY b)) AS hist
    FROM qc GROUP BY ALL
),
queue AS (
    SELECT account_sid, grp, w, count(*) AS n, sum(v) AS total, max(v) AS top
    FROM q GROUP BY ALL
),
from_numbers AS (
    SELECT account_sid, grp, w, map_from_entries(list((from_number, n) ORDER BY from_number)) AS m
    FROM (
        SELECT account_sid, grp, floor(epoch(ended_at))::BIGINT // 60 * 60 AS w, from_number,
            count(*) AS n
        FROM sc WHERE terminal AND grp = 'outbound' AND from_number IS NOT NULL GROUP BY ALL
    ) GROUP BY ALL
),
attestation AS (
    SELECT account_sid, grp, w, map_from_entries(list((attestation, n) ORDER BY attestation)) AS m
    FROM (
        SELECT account_sid, grp, floor(epoch(ended_at))::BIGINT // 60 * 60 AS w, attestation,
            count(*) AS n
        FROM sc WHERE terminal AND grp = 'inbound' AND attestation IS NOT NULL GROUP BY ALL
    ) GROUP BY ALL
),
debugger_counts AS (
    SELECT account_sid, grp, w,
        map_from_entries(list((error_code, n) ORDER BY error_code) FILTER (level = 'error'))
            AS errors,
        map_from_entries(
            list((error_code, n) ORDER BY error_code) FILTER (level IS DISTINCT FROM 'error')
        ) AS warnings
    FROM (
        SELECT account_sid, grp, floor(epoch(event_time))::BIGINT // 60 * 60 AS w, level,
            error_code, count(*) AS n
        FROM sd WHERE error_code IS NOT NULL GROUP BY ALL
    ) GROUP BY ALL
),
keys AS (
    SELECT account_sid, grp, w FROM ends
    UNION SELECT account_sid, grp, w FROM unknowns
    UNION SELECT account_sid, grp, w FROM seconds
    UNION SELECT account_sid, grp, w FROM debugger_counts
),
rows AS (
    SELECT
        k.account_sid,
        k.grp AS direction_group,
        TIMESTAMP '1970-01-01' + to_seconds(k.w) AS window_start,
        coalesce(e.attempts, 0) AS attempts,
        coalesce(e.completed, 0) AS completed,
        coalesce(e.busy, 0) AS busy,
        coalesce(e.no_answer, 0) AS no_answer,
        coalesce(e.failed, 0) AS failed,
        coalesce(e.canceled, 0) AS canceled,
        coalesce(e.answered, 0) AS answered,
        coalesce(u.unknown, 0) AS unknown,
        coalesce(e.talk_seconds, 0)::BIGINT AS talk_seconds,
        coalesce(e.short_calls, 0) AS short_calls,
        coalesce(e.rejections, 0) + coalesce(u.rejections, 0) AS trunk_cps_rejections,
        coalesce(s.cps_per_second, list_transform(range(60), i -> 0::BIGINT)) AS cps_per_second,
        coalesce(n.n, 0) AS queue_time_count,
        coalesce(n.total, 0)::BIGINT AS queue_time_sum_ms,
        n.top::BIGINT AS queue_time_max_ms,
        CASE WHEN p.b50 IS NOT NULL THEN least(
            CASE WHEN p.b50 = -1 THEN 0 ELSE 2 * pow({g}, p.b50) / ({g} + 1) END, n.top)
        END AS queue_time_p50_ms,
        CASE WHEN p.b95 IS NOT NULL THEN least(
            CASE WHEN p.b95 = -1 THEN 0 ELSE 2 * pow({g}, p.b95) / ({g} + 1) END, n.top)
        END AS queue_time_p95_ms,
        coalesce(p.hist, MAP {{}}::MAP(INTEGER, BIGINT)) AS queue_time_hist,
        coalesce(f.m, MAP {{}}::MAP(VARCHAR, BIGINT)) AS from_numbers,
        coalesce(a.m, MAP {{}}::MAP(VARCHAR, BIGINT)) AS attestation,
        coalesce(dc.errors, MAP {{}}::MAP(VARCHAR, BIGINT)) AS debugger_errors,
        coalesce(dc.warnings, MAP {{}}::MAP(VARCHAR, BIGINT)) AS debugger_warnings
    FROM keys AS k
    LEFT JOIN ends AS e USING (account_sid, grp, w)
    LEFT JOIN unknowns AS u USING (account_sid, grp, w)
    LEFT JOIN seconds AS s USING (account_sid, grp, w)
    LEFT JOIN queue AS n USING (account_sid, grp, w)
    LEFT JOIN qp AS p USING (account_sid, grp, w)
    LEFT JOIN from_numbers AS f USING (account_sid, grp, w)
    LEFT JOIN attestation AS a USING (account_sid, grp, w)
    LEFT JOIN debugger_counts AS dc USING (account_sid, grp, w)
)
SELECT *, list_sum(cps_per_second)::BIGINT AS calls_created,
    list_max(cps_per_second)::BIGINT AS cps_peak
FROM rows"""


def settled_before(
    now: datetime, grace_s: int, horizon_s: int, wall_clock_lag_s: float
) -> datetime:
    """The end of the last window the stream can no longer change (UTC, naive, on a minute)."""
    limit = now - timedelta(seconds=grace_s + horizon_s + wall_clock_lag_s)
    return _minute(limit)


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """What one run did in ``[start, end)``: rows written (``new`` of them where the window had
    none), stored rows kept as they were (equal to the batch's), stored rows removed."""

    start: datetime
    end: datetime
    written: int
    new: int
    kept: int
    removed: int


def backfill_health(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    *,
    call_timeout_s: int,
    isv_cps_limit: float,
    attempts: int = 8,
) -> BackfillResult:
    """Recompute the windows in ``[start, end)`` (UTC, naive; whole minutes) in batch and write
    them in one transaction, under the rules of this module's docstring."""
    start, end = _minute(start), _minute(end)
    for attempt in range(1, attempts + 1):
        try:
            con.execute("BEGIN")
            result = _backfill(con, start, end, call_timeout_s, isv_cps_limit)
            con.execute("COMMIT")
            return result
        except duckdb.TransactionException as exc:
            _rollback(con)
            if attempt == attempts:
                raise WarehouseError(f"backfill conflicted {attempts} times: {exc}") from exc
            logger.warning("backfill commit conflicted with another writer; retrying: %s", exc)
            time.sleep(min(2.0, 0.1 * 2**attempt))
        except duckdb.Error as exc:
            _rollback(con)
            raise WarehouseError(f"backfill failed: {exc}") from exc
    raise AssertionError("unreachable")


def _backfill(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    call_timeout_s: int,
    isv_cps_limit: float,
) -> BackfillResult:
    # Calls that may count in a window of the range: created, ended or timed out in it. The
    # call_time bound (creation, or the first event) lets DuckLake skip the other partitions: a
    # call ends at most a day of CPS queue and Twilio's 4-hour cap after it was created.
    reach = timedelta(seconds=call_timeout_s) + timedelta(days=1, hours=5)
    in_range = "BETWEEN $start AND $end - INTERVAL 1 MICROSECOND"
    params = {"start": start, "end": end}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE backfill_calls AS SELECT * FROM calls "
        f"WHERE call_time BETWEEN $earliest AND $end AND (created_at {in_range} "
        f"OR ended_at {in_range} OR last_event_at + to_seconds({call_timeout_s}) {in_range})",
        {**params, "earliest": start - reach},
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE backfill_debugger AS SELECT * FROM debugger_events "
        f"WHERE event_time {in_range}",
        params,
    )
    computed = health_rows_sql(
        "temp.main.backfill_calls", "temp.main.backfill_debugger", call_timeout_s
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE backfill_rows AS "
        f"SELECT * FROM ({computed}) WHERE window_start {in_range}",
        params,
    )
    con.execute(_DECISIONS, params)
    counts = con.sql(
        "SELECT count(*) FILTER (WHERE batch AND stored_source IS NULL), "
        "count(*) FILTER (WHERE batch AND stored_source IS NOT NULL AND NOT same), "
        "count(*) FILTER (WHERE same), "
        "count(*) FILTER (WHERE NOT batch AND NOT same) FROM temp.main.backfill_decisions"
    ).fetchone()
    assert counts is not None
    new, replaced, kept, removed = (int(n) for n in counts)
    if replaced or removed:
        con.execute(
            "DELETE FROM health_minute AS t WHERE t.window_start "
            f"{in_range} AND EXISTS (SELECT 1 FROM temp.main.backfill_decisions AS d "
            "WHERE d.stored_source IS NOT NULL AND NOT d.same AND d.account_sid = t.account_sid "
            "AND d.direction_group = t.direction_group AND d.window_start = t.window_start)",
            params,
        )
    if new or replaced:
        con.execute(_INSERT, {"isv_cps_limit": isv_cps_limit})
    if (new or replaced or removed) and has_hours(con):
        refresh_hours(con, "(SELECT * FROM temp.main.backfill_decisions WHERE NOT same)")
    return BackfillResult(start, end, new + replaced, new, kept, removed)


def _same(column: str) -> str:
    if column in _MAPS:
        return (
            f"coalesce(list_sort(map_entries(b.{column})), []) "
            f"= coalesce(list_sort(map_entries(s.{column})), [])"
        )
    return f"b.{column} IS NOT DISTINCT FROM s.{column}"


# Each window of the range, batch row or stored row or both: ``batch`` (the batch has it),
# ``stored_source`` (NULL: nothing stored; a row from a sink older than 0014 says nothing and is
# the stream's), ``same`` (stored and equal in every count, so it stays).
_DECISIONS = f"""
CREATE OR REPLACE TEMP TABLE backfill_decisions AS
WITH s AS (
    SELECT * FROM health_minute
    WHERE window_start BETWEEN $start AND $end - INTERVAL 1 MICROSECOND
)
SELECT
    coalesce(b.account_sid, s.account_sid) AS account_sid,
    coalesce(b.direction_group, s.direction_group) AS direction_group,
    coalesce(b.window_start, s.window_start) AS window_start,
    b.account_sid IS NOT NULL AS batch,
    CASE WHEN s.account_sid IS NOT NULL THEN coalesce(s.source, 'stream') END AS stored_source,
    s.late_events AS stored_late_events,
    s.parent_account_sid AS stored_parent,
    s.cps_limit AS stored_cps_limit,
    b.account_sid IS NOT NULL AND s.account_sid IS NOT NULL
        AND {" AND ".join(_same(c) for c in (*COMPARED, *_MAPS))} AS same
FROM temp.main.backfill_rows AS b
FULL OUTER JOIN s USING (account_sid, direction_group, window_start)
"""

_INSERT = """
INSERT INTO health_minute (
    account_sid, direction_group, window_start, window_end, parent_account_sid, attempts,
    completed, busy, no_answer, failed, canceled, answered, unknown, talk_seconds, short_calls,
    trunk_cps_rejections, calls_created, cps_per_second, cps_peak, cps_limit, queue_time_count,
    queue_time_sum_ms, queue_time_max_ms, queue_time_hist, from_numbers, attestation,
    debugger_errors, debugger_warnings, late_events, closed, updated_at, source
)
SELECT
    b.account_sid, b.direction_group, b.window_start, b.window_start + INTERVAL 60 SECOND,
    coalesce(d.stored_parent, t.parent_account_sid), b.attempts, b.completed, b.busy,
    b.no_answer, b.failed, b.canceled, b.answered, b.unknown, b.talk_seconds, b.short_calls,
    b.trunk_cps_rejections, b.calls_created, b.cps_per_second, b.cps_peak,
    coalesce(d.stored_cps_limit, CASE WHEN b.account_sid = 'ISV' THEN $isv_cps_limit END,
        t.cps_limit, 1.0),
    b.queue_time_count, b.queue_time_sum_ms, b.queue_time_max_ms, b.queue_time_hist,
    b.from_numbers, b.attestation, b.debugger_errors, b.debugger_warnings,
    coalesce(d.stored_late_events, 0), true, now()::TIMESTAMP, 'batch'
FROM temp.main.backfill_rows AS b
JOIN temp.main.backfill_decisions AS d USING (account_sid, direction_group, window_start)
LEFT JOIN (
    SELECT account_sid, any_value(parent_account_sid) AS parent_account_sid,
        max(cps_limit) AS cps_limit
    FROM tenants GROUP BY ALL
) AS t ON t.account_sid = b.account_sid
WHERE NOT d.same
"""


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # nothing to roll back when BEGIN itself failed
        con.execute("ROLLBACK")
