-- health_hourly and health_daily as in 0006, from one definition: the table macro
-- health_rollup(unit) rolls the minute rows up to periods of date_trunc(unit, window_start)
-- (sums add, rates come from the sums, QueueTime percentiles from the merged histograms, mixes
-- merged key by key); each view names its period column. DuckLake stores the macro in the
-- catalog beside the views, so every reader of the lake has it.

CREATE OR REPLACE MACRO health_rollup(unit) AS TABLE
WITH minutes AS (
    SELECT *, date_trunc(unit, window_start) AS period FROM health_minute
),
sums AS (
    SELECT
        account_sid, direction_group, period,
        sum(attempts) AS attempts, sum(answered) AS answered, sum(completed) AS completed,
        sum(busy) AS busy, sum(no_answer) AS no_answer, sum(failed) AS failed,
        sum(canceled) AS canceled, sum(unknown) AS unknown, sum(talk_seconds) AS talk_seconds,
        sum(short_calls) AS short_calls, sum(calls_created) AS calls_created,
        max(cps_peak) AS cps_peak, max(cps_limit) AS cps_limit,
        sum(queue_time_count) AS queue_time_count, sum(queue_time_sum_ms) AS queue_time_sum_ms,
        max(queue_time_max_ms) AS queue_time_max_ms,
        sum(trunk_cps_rejections) AS trunk_cps_rejections, sum(late_events) AS late_events
    FROM minutes
    GROUP BY ALL
),
buckets AS (
    SELECT account_sid, direction_group, period, entry.key AS bucket, sum(entry.value) AS n
    FROM (SELECT *, unnest(map_entries(queue_time_hist)) AS entry FROM minutes)
    GROUP BY ALL
),
running AS (
    SELECT
        *,
        sum(n) OVER (PARTITION BY account_sid, direction_group, period ORDER BY bucket) AS rank,
        sum(n) OVER (PARTITION BY account_sid, direction_group, period) AS total
    FROM buckets
),
quantiles AS (
    SELECT
        account_sid, direction_group, period,
        min(bucket) FILTER (WHERE rank >= ceil(0.50 * total)) AS b50,
        min(bucket) FILTER (WHERE rank >= ceil(0.95 * total)) AS b95,
        min(bucket) FILTER (WHERE rank >= ceil(0.99 * total)) AS b99
    FROM running
    GROUP BY ALL
),
entries AS (
    SELECT account_sid, direction_group, period, 'attestation' AS counter,
           unnest(map_entries(attestation)) AS entry
    FROM minutes
    UNION ALL
    SELECT account_sid, direction_group, period, 'debugger_errors',
           unnest(map_entries(debugger_errors))
    FROM minutes
    UNION ALL
    SELECT account_sid, direction_group, period, 'debugger_warnings',
           unnest(map_entries(debugger_warnings))
    FROM minutes
    UNION ALL
    SELECT account_sid, direction_group, period, 'from_numbers',
           unnest(map_entries(from_numbers))
    FROM minutes
),
summed AS (
    SELECT account_sid, direction_group, period, counter, entry.key AS key,
           CAST(sum(entry.value) AS BIGINT) AS n
    FROM entries
    GROUP BY ALL
),
mixes AS (
    SELECT
        account_sid, direction_group, period,
        map_from_entries(list((key, n) ORDER BY key) FILTER (WHERE counter = 'attestation'))
            AS attestation,
        map_from_entries(list((key, n) ORDER BY key) FILTER (WHERE counter = 'debugger_errors'))
            AS debugger_errors,
        map_from_entries(
            list((key, n) ORDER BY key) FILTER (WHERE counter = 'debugger_warnings')
        ) AS debugger_warnings,
        max(n) FILTER (WHERE counter = 'from_numbers')
            / nullif(sum(n) FILTER (WHERE counter = 'from_numbers'), 0) AS caller_id_top_share
    FROM summed
    GROUP BY ALL
)
SELECT
    s.account_sid, s.direction_group, s.period,
    s.* EXCLUDE (account_sid, direction_group, period),
    s.answered / nullif(s.attempts, 0) AS asr,
    (s.answered + s.busy + s.no_answer) / nullif(s.attempts, 0) AS ner,
    s.talk_seconds / nullif(s.answered, 0) AS acd_s,
    s.short_calls / nullif(s.answered, 0) AS short_call_ratio,
    s.calls_created
        / (epoch(s.period + CAST('1 ' || unit AS INTERVAL)) - epoch(s.period)) AS cps_mean,
    CASE WHEN q.b50 IS NOT NULL THEN least(
        CASE WHEN q.b50 = -1 THEN 0 ELSE 2 * pow(1.01 / 0.99, q.b50) / (1.01 / 0.99 + 1) END,
        coalesce(s.queue_time_max_ms, 'infinity'::DOUBLE)) END AS queue_time_p50_ms,
    CASE WHEN q.b95 IS NOT NULL THEN least(
        CASE WHEN q.b95 = -1 THEN 0 ELSE 2 * pow(1.01 / 0.99, q.b95) / (1.01 / 0.99 + 1) END,
        coalesce(s.queue_time_max_ms, 'infinity'::DOUBLE)) END AS queue_time_p95_ms,
    CASE WHEN q.b99 IS NOT NULL THEN least(
        CASE WHEN q.b99 = -1 THEN 0 ELSE 2 * pow(1.01 / 0.99, q.b99) / (1.01 / 0.99 + 1) END,
        coalesce(s.queue_time_max_ms, 'infinity'::DOUBLE)) END AS queue_time_p99_ms,
    m.attestation,
    m.debugger_errors,
    m.debugger_warnings,
    m.caller_id_top_share
FROM sums AS s
LEFT JOIN quantiles AS q USING (account_sid, direction_group, period)
LEFT JOIN mixes AS m USING (account_sid, direction_group, period);

CREATE OR REPLACE VIEW health_hourly AS
SELECT account_sid, direction_group, period AS hour,
       * EXCLUDE (account_sid, direction_group, period)
FROM health_rollup('hour');

CREATE OR REPLACE VIEW health_daily AS
SELECT account_sid, direction_group, CAST(period AS DATE) AS day,
       * EXCLUDE (account_sid, direction_group, period)
FROM health_rollup('day');
