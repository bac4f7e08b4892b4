-- billed_calls and billing_daily as in 0003 and 0005 (same rows, same types), computed in one
-- pass over the calls: the rate card is looked up once per (subaccount, direction, call type)
-- of the unrated calls rather than through a second scan of every call, and the parent rows
-- are summed from the subaccount rows rather than from every call again.

CREATE OR REPLACE VIEW billed_calls AS
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
priced AS (
    SELECT
        *,
        CASE WHEN rated_cost IS NULL THEN (
            SELECT arg_max({'rate': k.rate_per_minute, 'currency': k.currency}, k.specificity)
            FROM rate_card AS k
            WHERE (k.account_sid = '*' OR k.account_sid = rated.account_sid)
                AND (k.direction = '*' OR k.direction = rated.direction)
                AND (k.call_type = '*' OR k.call_type = rated.billed_call_type)
        ) END AS card
    FROM rated
)
SELECT
    call_sid,
    account_sid,
    coalesce(parent_account_sid, account_sid) AS parent_account_sid,
    call_time,
    CAST(call_time AS DATE) AS day,
    coalesce(direction, 'unknown') AS direction,
    billed_call_type AS call_type,
    answered,
    CASE WHEN answered THEN coalesce(call_duration_s, 0) ELSE 0 END AS talk_seconds,
    billed_mins AS billed_minutes,
    CAST(coalesce(rated_cost, billed_mins * card.rate, 0) AS DECIMAL(18, 6)) AS cost,
    coalesce(rated_currency, card.currency) AS currency,
    rated_cost IS NULL AND answered AS estimated
FROM priced;

CREATE OR REPLACE VIEW billing_daily AS
WITH subaccounts AS (
    SELECT
        account_sid, parent_account_sid, day, direction, call_type, currency,
        count(*) AS calls,
        count(*) FILTER (WHERE answered) AS answered,
        sum(talk_seconds) AS talk_seconds,
        sum(billed_minutes) AS billed_minutes,
        sum(cost) AS cost,
        coalesce(sum(cost) FILTER (WHERE estimated), 0) AS estimated_cost,
        count(*) FILTER (WHERE estimated) AS estimated_calls,
        bool_or(estimated) AS estimated
    FROM billed_calls
    GROUP BY ALL
),
scopes AS (
    SELECT 'subaccount' AS scope, * FROM subaccounts
    UNION ALL
    SELECT
        'parent', parent_account_sid, parent_account_sid, day, direction, call_type, currency,
        sum(calls), sum(answered), sum(talk_seconds), sum(billed_minutes), sum(cost),
        sum(estimated_cost), sum(estimated_calls), bool_or(estimated)
    FROM subaccounts
    GROUP BY parent_account_sid, day, direction, call_type, currency
)
SELECT
    scope,
    account_sid,
    parent_account_sid,
    day,
    direction,
    call_type,
    currency,
    CAST(calls AS BIGINT) AS calls,
    CAST(answered AS BIGINT) AS answered,
    CAST(talk_seconds AS BIGINT) AS talk_seconds,
    CAST(billed_minutes AS BIGINT) AS billed_minutes,
    CAST(cost AS DECIMAL(18, 6)) AS cost,
    CAST(estimated_cost AS DECIMAL(18, 6)) AS estimated_cost,
    CAST(estimated_calls AS BIGINT) AS estimated_calls,
    estimated
FROM scopes;
