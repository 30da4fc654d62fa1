-- statements: the month's chargeback lines per tenant x resource type, exact (the cents are added in Python by
-- largest remainder, billing_pipeline/assets/statements.py). Everything in tenant_costs is in scope, so the lines
-- of all tenants and 'unattributed' add up to the application's cost of the month.
SELECT
    accountant_id,
    resource_type                                                               AS line,
    currency,
    cost_metric,
    CAST(coalesce(sum(cost) FILTER (allocation = 'direct'), 0) AS DECIMAL(38, 10))   AS direct_cost,
    CAST(coalesce(sum(cost) FILTER (allocation <> 'direct'), 0) AS DECIMAL(38, 10))  AS shared_cost,
    CAST(sum(cost) AS DECIMAL(38, 10))                                          AS cost
FROM (
    -- only tenants of the registry have a statement of their own: every other id (unknown, a look-alike) is one
    -- 'unknown' statement (reported_tenants maps them, as in the reconciliation report), so the statements still
    -- add up to the in-scope cost
    SELECT coalesce(r.reported_as, c.accountant_id) AS accountant_id, c.resource_type, c.currency, c.cost_metric,
           c.allocation, c.cost
    FROM tenant_costs c LEFT JOIN reported_tenants r ON r.accountant_id = c.accountant_id
    WHERE c.billing_period = $billing_period
) AS reported
GROUP BY ALL
ORDER BY currency, accountant_id, line
