-- usage_table_writeback: the attributed actual cost per tenant x service x day, as written back to the
-- application's usage table. 'unattributed' is no tenant of the application: it is not written (it is in the
-- statements and the materialization metadata).
SELECT
    accountant_id,
    usage_date,
    coalesce(nullif(service, ''), 'unknown')                                    AS service,
    min(resource_type)                                                          AS resource_type,
    currency,
    cost_metric,
    CAST(sum(cost) AS DECIMAL(38, 10))                                          AS amount
FROM tenant_costs
WHERE billing_period = $billing_period AND accountant_id <> 'unattributed'
GROUP BY accountant_id, usage_date, coalesce(nullif(service, ''), 'unknown'), currency, cost_metric
ORDER BY accountant_id, usage_date, service, currency
