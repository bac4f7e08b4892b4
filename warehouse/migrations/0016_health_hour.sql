-- health_hour: one row per subaccount (and ISV), direction group and hour, the hour's minute
-- rows of health_minute merged: counts and sums added, peaks and limits the max, the QueueTime
-- histogram and the mixes (attestation, debugger errors and warnings, From numbers) added key by
-- key. Rolling it up gives what rolling the minutes up gives, percentiles included (they come
-- from the merged histogram, the same buckets either way). The sink rewrites the hours of every
-- batch of health_minute rows it writes, in the same transaction, from the stored minutes (as
-- does voicepulse backfill-health), so an hour is always the merge of its stored minutes:
-- replays, late rows and replaced windows included.
--
-- health_rollup_of(source, unit): health_rollup's definition over any table with the columns of
-- health_minute (health_minute or health_hour), by name; health_rollup(unit) is it over the
-- minutes, so health_hourly and health_daily keep their meaning. A unit of an hour or longer
-- reads the same from health_hour, sixty times fewer rows.
-- health_hours_of(source): minute rows (health_minute's columns, by name) merged into hours.

CREATE OR REPLACE MACRO health_rollup_of(source, unit) AS TABLE
WITH minutes AS (
    SELECT *, date_trunc(unit, window_start) AS period FROM query_table(source)
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

CREATE OR REPLACE MACRO health_rollup(unit) AS TABLE
SELECT * FROM health_rollup_of('health_minute', unit);

CREATE OR REPLACE MACRO health_hours_of(source) AS TABLE
WITH minutes AS (
    SELECT *, date_trunc('hour', window_start) AS hour FROM query_table(source)
),
sums AS (
    SELECT
        account_sid, direction_group, hour,
        CAST(sum(attempts) AS BIGINT) AS attempts, CAST(sum(answered) AS BIGINT) AS answered,
        CAST(sum(completed) AS BIGINT) AS completed, CAST(sum(busy) AS BIGINT) AS busy,
        CAST(sum(no_answer) AS BIGINT) AS no_answer, CAST(sum(failed) AS BIGINT) AS failed,
        CAST(sum(canceled) AS BIGINT) AS canceled, CAST(sum(unknown) AS BIGINT) AS unknown,
        CAST(sum(talk_seconds) AS BIGINT) AS talk_seconds,
        CAST(sum(short_calls) AS BIGINT) AS short_calls,
        CAST(sum(calls_created) AS BIGINT) AS calls_created,
        max(cps_peak) AS cps_peak, max(cps_limit) AS cps_limit,
        CAST(sum(queue_time_count) AS BIGINT) AS queue_time_count,
        CAST(sum(queue_time_sum_ms) AS BIGINT) AS queue_time_sum_ms,
        max(queue_time_max_ms) AS queue_time_max_ms,
        CAST(sum(trunk_cps_rejections) AS BIGINT) AS trunk_cps_rejections,
        CAST(sum(late_events) AS BIGINT) AS late_events,
        max(updated_at) AS updated_at
    FROM minutes
    GROUP BY ALL
),
buckets AS (
    SELECT account_sid, direction_group, hour, entry.key AS bucket,
           CAST(sum(entry.value) AS BIGINT) AS n
    FROM (SELECT *, unnest(map_entries(queue_time_hist)) AS entry FROM minutes)
    GROUP BY ALL
),
hists AS (
    SELECT account_sid, direction_group, hour,
           map_from_entries(list((bucket, n) ORDER BY bucket)) AS queue_time_hist
    FROM buckets
    GROUP BY ALL
),
entries AS (
    SELECT account_sid, direction_group, hour, 'attestation' AS counter,
           unnest(map_entries(attestation)) AS entry
    FROM minutes
    UNION ALL
    SELECT account_sid, direction_group, hour, 'debugger_errors',
           unnest(map_entries(debugger_errors))
    FROM minutes
    UNION ALL
    SELECT account_sid, direction_group, hour, 'debugger_warnings',
           unnest(map_entries(debugger_warnings))
    FROM minutes
    UNION ALL
    SELECT account_sid, direction_group, hour, 'from_numbers',
           unnest(map_entries(from_numbers))
    FROM minutes
),
summed AS (
    SELECT account_sid, direction_group, hour, counter, entry.key AS key,
           CAST(sum(entry.value) AS BIGINT) AS n
    FROM entries
    GROUP BY ALL
),
mixes AS (
    SELECT
        account_sid, direction_group, hour,
        map_from_entries(list((key, n) ORDER BY key) FILTER (WHERE counter = 'attestation'))
            AS attestation,
        map_from_entries(list((key, n) ORDER BY key) FILTER (WHERE counter = 'debugger_errors'))
            AS debugger_errors,
        map_from_entries(
            list((key, n) ORDER BY key) FILTER (WHERE counter = 'debugger_warnings')
        ) AS debugger_warnings,
        map_from_entries(list((key, n) ORDER BY key) FILTER (WHERE counter = 'from_numbers'))
            AS from_numbers
    FROM summed
    GROUP BY ALL
)
SELECT
    s.account_sid, s.direction_group, s.hour AS window_start,
    s.* EXCLUDE (account_sid, direction_group, hour),
    h.queue_time_hist, m.attestation, m.debugger_errors, m.debugger_warnings, m.from_numbers
FROM sums AS s
LEFT JOIN hists AS h USING (account_sid, direction_group, hour)
LEFT JOIN mixes AS m USING (account_sid, direction_group, hour);

CREATE TABLE health_hour (
    account_sid VARCHAR NOT NULL,
    direction_group VARCHAR NOT NULL,
    window_start TIMESTAMP NOT NULL,
    attempts BIGINT,
    answered BIGINT,
    completed BIGINT,
    busy BIGINT,
    no_answer BIGINT,
    failed BIGINT,
    canceled BIGINT,
    unknown BIGINT,
    talk_seconds BIGINT,
    short_calls BIGINT,
    calls_created BIGINT,
    cps_peak BIGINT,
    cps_limit DOUBLE,
    queue_time_count BIGINT,
    queue_time_sum_ms BIGINT,
    queue_time_max_ms BIGINT,
    trunk_cps_rejections BIGINT,
    late_events BIGINT,
    updated_at TIMESTAMP,
    queue_time_hist MAP(INTEGER, BIGINT),
    attestation MAP(VARCHAR, BIGINT),
    debugger_errors MAP(VARCHAR, BIGINT),
    debugger_warnings MAP(VARCHAR, BIGINT),
    from_numbers MAP(VARCHAR, BIGINT)
);
-- Files by time, as health_minute's.
ALTER TABLE health_hour SET PARTITIONED BY (year(window_start), month(window_start));

INSERT INTO health_hour BY NAME
SELECT * FROM health_hours_of('health_minute') ORDER BY window_start, account_sid;
