-- The billing API's queries (read-only). Every query is parameterized ($month, $accountant_id): no value is ever
-- formatted into SQL text. Each block starts with a "-- name: <query>" line; queries.py loads them by name.

-- name: tenant_months
-- The months for which the accountant has any data: attributed cost (CUR) or estimates.
SELECT billing_period FROM tenant_costs WHERE accountant_id = $accountant_id
UNION
SELECT billing_period FROM estimated_usage WHERE accountant_id = $accountant_id
ORDER BY billing_period DESC;

-- name: actual_totals
-- Every tenant's (and 'unattributed') exact cost of the months, for the largest-remainder cents of the month's
-- statement. Only the caller's own rows ever leave the server.
SELECT billing_period, accountant_id, currency, sum(cost) AS cost, any_value(cost_metric) AS cost_metric
FROM tenant_costs
WHERE billing_period IN (SELECT unnest($months))
GROUP BY ALL;

-- name: estimated_totals
SELECT billing_period, accountant_id, sum(estimated_cost) AS estimated_cost
FROM estimated_usage
WHERE billing_period IN (SELECT unnest($months))
GROUP BY ALL;

-- name: month_final
-- Final when the month's CUR carries an invoice id (the report repeats it per row).
SELECT billing_period, bool_or(is_final) AS is_final
FROM reconciliation_report
WHERE billing_period IN (SELECT unnest($months))
GROUP BY ALL;

-- name: actual_by_type
SELECT resource_type, currency, sum(cost) AS cost
FROM tenant_costs
WHERE billing_period = $month AND accountant_id = $accountant_id
GROUP BY ALL
ORDER BY ALL;

-- name: estimated_by_operation
SELECT resource_type, coalesce(operation, '') AS operation, sum(quantity) AS quantity,
       sum(estimated_cost) AS estimated_cost, sum(records) AS records
FROM estimated_usage
WHERE billing_period = $month AND accountant_id = $accountant_id
GROUP BY ALL
ORDER BY ALL;

-- name: measured_drivers
-- The caller's measured usage of the shared services (the drivers that split shared cost), by resource type.
WITH types AS (
    SELECT DISTINCT service, resource_type FROM tenant_costs WHERE billing_period = $month
)
SELECT coalesce(t.resource_type, 'other') AS resource_type, s.driver, sum(s.quantity) AS quantity
FROM usage_shares s
LEFT JOIN types t USING (service)
WHERE s.billing_period = $month AND s.accountant_id = $accountant_id
GROUP BY ALL
ORDER BY ALL;

-- name: driver_costs
-- The part of the caller's cost of each type that was split by a given driver.
SELECT resource_type, driver, sum(cost) AS cost
FROM tenant_costs
WHERE billing_period = $month AND accountant_id = $accountant_id AND driver IS NOT NULL
GROUP BY ALL
ORDER BY ALL;

-- name: report
SELECT resource_type, currency, estimated_cost, actual_cost, variance, variance_pct, flagged, is_final
FROM reconciliation_report
WHERE billing_period = $month AND accountant_id = $accountant_id
ORDER BY resource_type = 'total', resource_type;
