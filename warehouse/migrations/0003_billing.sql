-- Billing: what each subaccount (and each parent) owes, per day and month, from the calls.
-- Money is DECIMAL end to end. A call's cost is Twilio's price (calls.cost from the call fact,
-- else the rated Call resource); a call Twilio has not rated yet is priced from the rate card
-- (written by the sink at start from the settings) and flagged `estimated` until the price
-- arrives. Billed minutes are ceil(CallDuration / 60) per answered call.

CREATE TABLE rate_card (
    account_sid VARCHAR NOT NULL,  -- '*' for every subaccount
    direction VARCHAR NOT NULL,  -- '*' for every direction
    call_type VARCHAR NOT NULL,  -- '*' for every call type
    rate_per_minute DECIMAL(18, 6) NOT NULL,
    currency VARCHAR NOT NULL,
    specificity INTEGER NOT NULL  -- the most specific matching rate wins
);

CREATE TABLE billing_settings (
    name VARCHAR NOT NULL,
    value DECIMAL(18, 6) NOT NULL
);

CREATE VIEW billed_calls AS
WITH rated AS (
    SELECT
        c.*,
        coalesce(c.cost, r.cost) AS rated_cost,
        upper(coalesce(CASE WHEN c.cost IS NOT NULL THEN c.price_unit END, r.price_unit))
            AS rated_currency,
        coalesce(c.call_type, CASE WHEN c.trunk_sid IS NOT NULL THEN 'trunking' END, 'unknown')
            AS billed_call_type,
        CASE WHEN c.answered THEN (coalesce(c.call_duration_s, 0) + 59) // 60 ELSE 0 END
            AS billed_mins
    FROM calls AS c
    LEFT JOIN call_resources AS r ON r.call_sid = c.call_sid AND r.rated
    WHERE c.terminal
),
unrated AS (
    SELECT
        u.call_sid,
        arg_max(k.rate_per_minute, k.specificity) AS rate_per_minute,
        arg_max(k.currency, k.specificity) AS currency
    FROM rated AS u
    JOIN rate_card AS k
        ON (k.account_sid = '*' OR k.account_sid = u.account_sid)
        AND (k.direction = '*' OR k.direction = u.direction)
        AND (k.call_type = '*' OR k.call_type = u.billed_call_type)
    WHERE u.rated_cost IS NULL
    GROUP BY u.call_sid
)
SELECT
    r.call_sid,
    r.account_sid,
    coalesce(r.parent_account_sid, r.account_sid) AS parent_account_sid,
    r.call_time,
    CAST(r.call_time AS DATE) AS day,
    coalesce(r.direction, 'unknown') AS direction,
    r.billed_call_type AS call_type,
    r.answered,
    CASE WHEN r.answered THEN coalesce(r.call_duration_s, 0) ELSE 0 END AS talk_seconds,
    r.billed_mins AS billed_minutes,
    CAST(coalesce(r.rated_cost, r.billed_mins * u.rate_per_minute, 0) AS DECIMAL(18, 6)) AS cost,
    coalesce(r.rated_currency, u.currency) AS currency,
    r.rated_cost IS NULL AND r.answered AS estimated
FROM rated AS r
LEFT JOIN unrated AS u ON u.call_sid = r.call_sid;

CREATE VIEW billing_daily AS
SELECT
    CASE WHEN grouping(account_sid) = 1 THEN 'parent' ELSE 'subaccount' END AS scope,
    coalesce(account_sid, parent_account_sid) AS account_sid,
    parent_account_sid,
    day,
    direction,
    call_type,
    currency,
    count(*) AS calls,
    count(*) FILTER (WHERE answered) AS answered,
    sum(talk_seconds) AS talk_seconds,
    sum(billed_minutes) AS billed_minutes,
    CAST(sum(cost) AS DECIMAL(18, 6)) AS cost,
    CAST(coalesce(sum(cost) FILTER (WHERE estimated), 0) AS DECIMAL(18, 6)) AS estimated_cost,
    count(*) FILTER (WHERE estimated) AS estimated_calls,
    bool_or(estimated) AS estimated
FROM billed_calls
GROUP BY GROUPING SETS (
    (parent_account_sid, account_sid, day, direction, call_type, currency),
    (parent_account_sid, day, direction, call_type, currency)
);

CREATE VIEW billing_monthly AS
SELECT
    scope,
    account_sid,
    parent_account_sid,
    CAST(date_trunc('month', day) AS DATE) AS month,
    direction,
    call_type,
    currency,
    sum(calls) AS calls,
    sum(answered) AS answered,
    sum(talk_seconds) AS talk_seconds,
    sum(billed_minutes) AS billed_minutes,
    CAST(sum(cost) AS DECIMAL(18, 6)) AS cost,
    CAST(sum(estimated_cost) AS DECIMAL(18, 6)) AS estimated_cost,
    sum(estimated_calls) AS estimated_calls,
    bool_or(estimated) AS estimated
FROM billing_daily
GROUP BY ALL;

-- Our billed minutes and cost against Twilio's usage records (category `calls`, the roll-up of
-- every call category) per subaccount and day; `flagged` beyond the configured tolerances.
CREATE VIEW usage_reconciliation AS
WITH ours AS (
    SELECT
        account_sid,
        day,
        sum(billed_minutes) AS minutes,
        CAST(sum(cost) AS DECIMAL(18, 6)) AS cost,
        bool_or(estimated) AS estimated
    FROM billing_daily
    WHERE scope = 'subaccount'
    GROUP BY ALL
),
theirs AS (
    SELECT account_sid, start_date AS day, usage AS minutes, cost
    FROM usage_records
    WHERE category = 'calls'
),
tolerance AS (
    SELECT
        coalesce(max(value) FILTER (WHERE name = 'tolerance_minutes'), 0) AS minutes,
        coalesce(max(value) FILTER (WHERE name = 'tolerance_cost'), 0) AS cost
    FROM billing_settings
),
joined AS (
    SELECT
        coalesce(o.account_sid, t.account_sid) AS account_sid,
        coalesce(o.day, t.day) AS day,
        CAST(coalesce(o.minutes, 0) AS DECIMAL(18, 6)) AS our_minutes,
        t.minutes AS twilio_minutes,
        CAST(coalesce(o.minutes, 0) - coalesce(t.minutes, 0) AS DECIMAL(18, 6)) AS minutes_diff,
        coalesce(o.cost, 0) AS our_cost,
        t.cost AS twilio_cost,
        CAST(coalesce(o.cost, 0) - coalesce(t.cost, 0) AS DECIMAL(18, 6)) AS cost_diff,
        coalesce(o.estimated, false) AS estimated,
        o.account_sid IS NULL AS no_calls,
        t.account_sid IS NULL AS no_usage
    FROM ours AS o
    FULL OUTER JOIN theirs AS t ON t.account_sid = o.account_sid AND t.day = o.day
)
SELECT
    j.*,
    CASE
        WHEN j.no_usage THEN 'no_usage_record'
        WHEN abs(j.minutes_diff) > tol.minutes OR abs(j.cost_diff) > tol.cost THEN 'mismatch'
        ELSE 'ok'
    END AS status,
    j.no_usage OR abs(j.minutes_diff) > tol.minutes OR abs(j.cost_diff) > tol.cost AS flagged
FROM joined AS j, tolerance AS tol;
