-- tenant_costs: the month's in-scope cost per tenant and day, from the fact-level `cost_allocations`, plus the
-- tenants' parts of proportional account-level lines (`account_level_allocations`, allocation 'proportional').
-- Exact DECIMAL sums, no rounding: cents appear only in statements, by largest remainder per tenant-month.
WITH allocations AS (
    SELECT billing_period, usage_hour, accountant_id, service, usage_type, line_item_type, allocation, driver,
           driver_quantity, currency, cost
    FROM cost_allocations
    UNION ALL
    SELECT billing_period, usage_hour, accountant_id, service, usage_type, line_item_type, allocation, driver,
           driver_quantity, currency, cost
    FROM account_level_allocations
)
SELECT
    billing_period,
    CAST(usage_hour AS DATE)                                                   AS usage_date,
    accountant_id,
    service,
    coalesce(types.resource_type, 'other')                                     AS resource_type,
    usage_type,
    line_item_type,
    allocation,
    driver,
    -- the evidence quantity behind each split, summed over the day's facts
    sum(driver_quantity)                                                       AS driver_quantity,
    currency,
    $cost_metric                                                               AS cost_metric,
    sum(cost)                                                                  AS cost
FROM allocations
LEFT JOIN service_resource_types types USING (service)
GROUP BY ALL
