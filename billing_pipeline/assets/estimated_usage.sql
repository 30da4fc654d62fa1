-- estimated_usage: the application's own cost estimates (its usage table), per tenant x resource type x
-- operation x day of the month. Resource types the catalog does not name (service_resource_types) count as 'other'.
SELECT
    CAST($billing_period AS DATE)                                              AS billing_period,
    accountant_id,
    CASE WHEN lower(resource_type) IN (SELECT resource_type FROM service_resource_types)
         THEN lower(resource_type) ELSE 'other' END                            AS resource_type,
    operation,
    CAST(timestamp AS DATE)                                                    AS usage_date,
    sum(quantity)                                                              AS quantity,
    sum(estimated_cost)                                                        AS estimated_cost,
    count(*)                                                                   AS records
FROM estimates
WHERE timestamp >= $billing_period AND timestamp < $next_period
GROUP BY ALL
