-- usage_shares: each tenant's measured usage per hour x service x driver x scope, and its share of the total.
-- Input: the relation `usage_evidence` (the log readers' hourly quantities). Shares are for reading;
-- the attribution divides by the exact DECIMAL quantities.
WITH evidence AS (
    SELECT usage_hour, service, driver, coalesce(scope, '') AS scope, accountant_id, sum(quantity) AS quantity
    FROM usage_evidence
    WHERE usage_hour >= $billing_period AND usage_hour < $next_period
    GROUP BY ALL
    HAVING sum(quantity) > 0
)
SELECT
    CAST($billing_period AS DATE)                                               AS billing_period,
    usage_hour,
    service,
    driver,
    scope,
    accountant_id,
    quantity,
    sum(quantity) OVER same_usage                                               AS total_quantity,
    CAST(quantity AS DOUBLE) / CAST(sum(quantity) OVER same_usage AS DOUBLE)    AS share
FROM evidence
WINDOW same_usage AS (PARTITION BY usage_hour, service, driver, scope)
