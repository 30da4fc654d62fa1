-- reconciliation_report: the application's estimates against the attributed actual cost, per tenant x resource
-- type x currency, and per tenant x currency ('total'). actual_cost is all of the tenant's cost of that type:
-- direct, shared, fallback and its part of account-level lines alike.
-- As the seed defines it: variance = actual - estimated, variance_pct = variance / actual x 100, and 0 when actual
-- is not positive. A row is flagged when |variance_pct| exceeds the threshold, when cost arrived that nothing
-- estimated, or when an estimate found no cost (actual not positive).
-- Estimates carry no currency: they are in the pricing file's ($currency) and are compared only with actuals of
-- that currency; actuals of any other currency get rows of their own with no estimate.
-- Coverage-aligned columns (issue 17): a provisional month's CUR stops hours or days before its estimates do, so
-- the covered_* columns compare only the whole days the CUR covers (usage dates before covered_days_through), with
-- the same variance formula, and estimated_after_coverage shows the estimates of the days after apart. A final
-- month is covered whole.
-- Only tenants of the registry are reported by their id: the cost and estimates of every other id (unknown, a
-- look-alike) are reported together as 'unknown' (the relation reported_tenants, from the tenant registry, maps
-- those ids); tenant_costs keeps them under the id they were tagged with, tenant_registry names them.
WITH costs AS (
    SELECT coalesce(r.reported_as, c.accountant_id) AS accountant_id, c.resource_type, c.currency, c.usage_date,
           c.cost
    FROM tenant_costs c LEFT JOIN reported_tenants r ON r.accountant_id = c.accountant_id
    WHERE c.billing_period = $billing_period
),
estimates AS (
    SELECT coalesce(r.reported_as, e.accountant_id) AS accountant_id, e.resource_type, e.usage_date,
           e.estimated_cost
    FROM estimated_usage e LEFT JOIN reported_tenants r ON r.accountant_id = e.accountant_id
    WHERE e.billing_period = $billing_period
),
coverage AS (
    SELECT max(usage_hour) + INTERVAL 1 HOUR                                   AS covered_through
    FROM hourly_cost_facts
    WHERE billing_period = $billing_period AND in_scope AND span_hours = 1
),
aligned AS (
    SELECT covered_through,
           CASE WHEN $is_final THEN CAST(CAST($billing_period AS DATE) + INTERVAL 1 MONTH AS DATE)
                ELSE coalesce(CAST(covered_through AS DATE), CAST($billing_period AS DATE)) END AS covered_days_through
    FROM coverage
),
actual_covered AS (
    SELECT accountant_id, resource_type, currency, sum(cost) AS actual_covered_cost
    FROM costs CROSS JOIN aligned
    WHERE usage_date < covered_days_through
    GROUP BY ALL
),
estimated_split AS (
    SELECT accountant_id, resource_type, $currency AS currency,
           coalesce(sum(estimated_cost) FILTER (WHERE usage_date < covered_days_through), 0) AS estimated_covered_cost,
           coalesce(sum(estimated_cost) FILTER (WHERE usage_date >= covered_days_through), 0) AS estimated_after_coverage
    FROM estimates CROSS JOIN aligned
    GROUP BY ALL
),
actual AS (
    SELECT accountant_id, resource_type, currency, sum(cost) AS actual_cost
    FROM costs
    GROUP BY ALL
),
estimated AS (
    SELECT accountant_id, resource_type, $currency AS currency, sum(estimated_cost) AS estimated_cost
    FROM estimates
    GROUP BY ALL
),
by_resource_type AS (
    SELECT
        accountant_id,
        resource_type,
        currency,
        coalesce(e.estimated_cost, 0)                                          AS estimated_cost,
        coalesce(a.actual_cost, 0)                                             AS actual_cost,
        coalesce(es.estimated_covered_cost, 0)                                 AS estimated_covered_cost,
        coalesce(ac.actual_covered_cost, 0)                                    AS actual_covered_cost,
        coalesce(es.estimated_after_coverage, 0)                               AS estimated_after_coverage
    FROM actual a
    FULL OUTER JOIN estimated e USING (accountant_id, resource_type, currency)
    LEFT JOIN estimated_split es USING (accountant_id, resource_type, currency)
    LEFT JOIN actual_covered ac USING (accountant_id, resource_type, currency)
),
with_totals AS (
    SELECT * FROM by_resource_type
    UNION ALL
    SELECT accountant_id, 'total', currency, sum(estimated_cost), sum(actual_cost),
           sum(estimated_covered_cost), sum(actual_covered_cost), sum(estimated_after_coverage)
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
    CASE WHEN actual_cost > 0
         THEN CAST(round(CAST(actual_cost - estimated_cost AS DOUBLE) * 100 / CAST(actual_cost AS DOUBLE), 4)
                   AS DECIMAL(38, 4))
         ELSE CAST(0 AS DECIMAL(38, 4)) END                                    AS variance_pct,
    -- compared in DECIMAL, not through the rounded percentage
    CASE WHEN estimated_cost = 0 THEN actual_cost <> 0                         -- cost nothing estimated
         WHEN actual_cost <= 0 THEN true                                       -- an estimate that found no cost
         ELSE abs(actual_cost - estimated_cost) * 100 > CAST($threshold_pct AS DECIMAL(38, 10)) * actual_cost
    END                                                                        AS flagged,
    $is_final                                                                  AS is_final,
    (SELECT covered_through FROM aligned)                                      AS covered_through,
    (SELECT covered_days_through FROM aligned)                                 AS covered_days_through,
    CAST(estimated_covered_cost AS DECIMAL(38, 10))                            AS estimated_covered_cost,
    CAST(actual_covered_cost AS DECIMAL(38, 10))                               AS actual_covered_cost,
    CAST(actual_covered_cost - estimated_covered_cost AS DECIMAL(38, 10))      AS covered_variance,
    CASE WHEN actual_covered_cost > 0
         THEN CAST(round(CAST(actual_covered_cost - estimated_covered_cost AS DOUBLE) * 100
                         / CAST(actual_covered_cost AS DOUBLE), 4) AS DECIMAL(38, 4))
         ELSE CAST(0 AS DECIMAL(38, 4)) END                                    AS covered_variance_pct,
    CAST(estimated_after_coverage AS DECIMAL(38, 10))                          AS estimated_after_coverage
FROM with_totals
