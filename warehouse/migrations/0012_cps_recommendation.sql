-- The CPS each subaccount, and the ISV as a whole, would have needed over the last 30 days to
-- keep QueueTime p95 at or under 5 s, beside the CPS configured (docs/alerting.md, "CPS
-- recommendation"). Programmable Voice queues the calls created past the CPS limit and starts
-- them at the limit's pace, first in first out: a queue drained at c calls a second.
--
-- From the calls created in each second of the outbound health rows (cps_per_second), for each
-- candidate c from 1 to the busiest second's count, the backlog after second t follows Lindley's
-- recursion b(t) = max(0, b(t-1) + n(t) - c), computed as S(t) - min(0, min of S up to t) with
-- S(t) = calls created up to t - c * (seconds elapsed): S falls during seconds without calls, so
-- its running minimum is reached in a second with calls or in the second just before one, and
-- only those seconds are read. The calls of second t wait at most b(t) / c seconds (the last of
-- them); c keeps QueueTime p95 under the limit when at least 95 % of the calls wait no longer.
-- The recommendation is the least such c. The 30 days end at the newest outbound window.
--
-- cps_recommendation_for(queue_limit_s, days) takes another limit or span; the view is its
-- default. It reads every second with calls once per candidate: on a large lake, give it a
-- shorter span.

CREATE OR REPLACE MACRO cps_recommendation_for(queue_limit_s, days) AS TABLE
WITH newest AS (
    SELECT max(window_end) AS span_end FROM health_minute WHERE direction_group = 'outbound'
),
span AS (
    SELECT span_end - to_days(CAST(days AS INTEGER)) AS span_start, span_end FROM newest
),
per_second AS (
    SELECT
        account_sid,
        epoch(window_start)::BIGINT + unnest(range(len(cps_per_second))) AS second,
        unnest(cps_per_second) AS calls
    FROM health_minute, span
    WHERE direction_group = 'outbound'
        AND window_start >= span.span_start
        AND cps_per_second IS NOT NULL
),
busy AS (
    SELECT account_sid, second, calls FROM per_second WHERE calls > 0
),
accounts AS (
    SELECT
        account_sid, min(second) AS first_second, max(calls) AS peak_cps,
        sum(calls) AS calls, count(*) AS busy_seconds
    FROM busy
    GROUP BY account_sid
),
candidates AS (
    SELECT account_sid, first_second, unnest(range(1, peak_cps + 1)) AS cps FROM accounts
),
drained AS (
    SELECT
        b.account_sid, c.cps, b.second, b.calls,
        sum(b.calls) OVER run - c.cps * (b.second - c.first_second + 1) AS s_now
    FROM busy AS b
    JOIN candidates AS c USING (account_sid)
    WINDOW run AS (PARTITION BY b.account_sid, c.cps ORDER BY b.second ROWS UNBOUNDED PRECEDING)
),
backlog AS (
    SELECT
        account_sid, cps, calls,
        s_now - least(0, min(least(s_now, s_now - calls + cps)) OVER run) AS backlog
    FROM drained
    WINDOW run AS (PARTITION BY account_sid, cps ORDER BY second ROWS UNBOUNDED PRECEDING)
),
judged AS (
    SELECT
        account_sid, cps,
        sum(calls) FILTER (WHERE backlog <= queue_limit_s * cps) AS calls_in_time,
        sum(calls) AS calls
    FROM backlog
    GROUP BY account_sid, cps
),
recommended AS (
    SELECT account_sid, min(cps) FILTER (WHERE calls_in_time >= 0.95 * calls) AS recommended_cps
    FROM judged
    GROUP BY account_sid
),
configured AS (
    SELECT account_sid, arg_max(cps_limit, window_start) AS cps_limit
    FROM health_minute
    WHERE direction_group = 'outbound' AND cps_limit IS NOT NULL
    GROUP BY account_sid
),
named AS (
    SELECT account_sid, arg_max(name, updated_at) AS name, arg_max(cps_limit, updated_at) AS cps_limit
    FROM tenants
    GROUP BY account_sid
)
SELECT
    a.account_sid,
    CASE WHEN a.account_sid = 'ISV' THEN 'all subaccounts (ISV)' ELSE n.name END AS name,
    coalesce(n.cps_limit, c.cps_limit) AS configured_cps,
    r.recommended_cps,
    a.peak_cps,
    a.calls,
    a.busy_seconds,
    CAST(queue_limit_s AS DOUBLE) AS queue_limit_s,
    s.span_start,
    s.span_end
FROM accounts AS a
JOIN recommended AS r USING (account_sid)
CROSS JOIN span AS s
LEFT JOIN configured AS c USING (account_sid)
LEFT JOIN named AS n USING (account_sid);

CREATE VIEW cps_recommendation AS SELECT * FROM cps_recommendation_for(5, 30);
