-- reconciliation_report: the application's estimates against the attributed actual cost, per tenant x resource
-- type, and per tenant ('total'). actual_cost is all of the tenant's cost of that type: direct, shared and
-- fallback alike. A row is flagged when |variance| exceeds the threshold share of the estimate, or when cost
-- arrived that nothing estimated.
WITH actual AS (
    SELECT accountant_id, resource_type, currency, sum(cost) AS actual_cost
    FROM tenant_costs
    WHERE billing_period = $billing_period
    GROUP BY ALL
),
estimated AS (
    SELECT accountant_id, resource_type, sum(estimated_cost) AS estimated_cost
    FROM estimated_usage
    WHERE billing_period = $billing_period
    GROUP BY ALL
),
by_resource_type AS (
    SELECT
        accountant_id,
        resource_type,
        coalesce(a.currency, $currency)                                        AS currency,
        coalesce(e.estimated_cost, 0)                                          AS estimated_cost,
        coalesce(a.actual_cost, 0)                                             AS actual_cost
    FROM actual a
    FULL OUTER JOIN estimated e USING (accountant_id, resource_type)
),
with_totals AS (
    SELECT * FROM by_resource_type
    UNION ALL
    SELECT accountant_id, 'total', currency, sum(estimated_cost), sum(actual_cost)
    FROM by_resource_type
    GROUP BY accountant_id, currency
)
SELECT
    CAST($billing_period AS DATE)                                              AS billing_period,
    accountant_id,
    resource_type,
    currency,
    CAST(estimated_cost AS DECIMAL(38, 10))                                    AS estimated_cost,
    CAST(actual_cost AS DECIMAL(38, 10))                                       AS actual_cost,
    CAST(actual_cost - estimated_cost AS DECIMAL(38, 10))                      AS variance,
    CASE WHEN estimated_cost <> 0
         THEN CAST(round(CAST(actual_cost - estimated_cost AS DOUBLE) * 100 / CAST(estimated_cost AS DOUBLE), 4)
                   AS DECIMAL(38, 4)) END                                      AS variance_pct,
    -- compared in DECIMAL, not through the rounded percentage
    CASE WHEN estimated_cost = 0 THEN actual_cost <> 0
         ELSE abs(actual_cost - estimated_cost) * 100 > CAST($threshold_pct AS DECIMAL(38, 10)) * abs(estimated_cost)
    END                                                                        AS flagged,
    $is_final                                                                  AS is_final
FROM with_totals
