-- Counts and minutes in the billing views as BIGINT (sums of BIGINT are HUGEINT in DuckDB,
-- which pandas and many Parquet readers turn into floats). Same rows, same meaning.

CREATE OR REPLACE VIEW billing_daily AS
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
    CAST(sum(talk_seconds) AS BIGINT) AS talk_seconds,
    CAST(sum(billed_minutes) AS BIGINT) AS billed_minutes,
    CAST(sum(cost) AS DECIMAL(18, 6)) AS cost,
    CAST(coalesce(sum(cost) FILTER (WHERE estimated), 0) AS DECIMAL(18, 6)) AS estimated_cost,
    count(*) FILTER (WHERE estimated) AS estimated_calls,
    bool_or(estimated) AS estimated
FROM billed_calls
GROUP BY GROUPING SETS (
    (parent_account_sid, account_sid, day, direction, call_type, currency),
    (parent_account_sid, day, direction, call_type, currency)
);

CREATE OR REPLACE VIEW billing_monthly AS
SELECT
    scope,
    account_sid,
    parent_account_sid,
    CAST(date_trunc('month', day) AS DATE) AS month,
    direction,
    call_type,
    currency,
    CAST(sum(calls) AS BIGINT) AS calls,
    CAST(sum(answered) AS BIGINT) AS answered,
    CAST(sum(talk_seconds) AS BIGINT) AS talk_seconds,
    CAST(sum(billed_minutes) AS BIGINT) AS billed_minutes,
    CAST(sum(cost) AS DECIMAL(18, 6)) AS cost,
    CAST(sum(estimated_cost) AS DECIMAL(18, 6)) AS estimated_cost,
    CAST(sum(estimated_calls) AS BIGINT) AS estimated_calls,
    bool_or(estimated) AS estimated
FROM billing_daily
GROUP BY ALL;
