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
FROM tenant_costs
WHERE billing_period = $billing_period
GROUP BY ALL
ORDER BY currency, accountant_id, line
