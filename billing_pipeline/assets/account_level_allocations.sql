-- account_level_allocations: the application's part of each proportional account-level line (account_level_lines)
-- split among the tenants and `unattributed` by their share of the application's cost of the line's product code
-- ('*': all product codes) and currency in the month (cost_allocations; tenants with a positive cost of it),
-- exactly in units of 1e-10 by largest remainder, ties by accountant_id; allocation `proportional`.
-- Same columns as cost_allocations, so tenant_costs sums both. Inputs: account_level_lines, cost_allocations.
WITH weights AS (
    SELECT coalesce(product_code, service, '') AS product, currency, accountant_id,
           CAST(sum(cost) * 10000000000 AS DECIMAL(38, 0)) AS weight
    FROM cost_allocations GROUP BY ALL HAVING sum(cost) > 0
    UNION ALL
    SELECT '*', currency, accountant_id, CAST(sum(cost) * 10000000000 AS DECIMAL(38, 0))
    FROM cost_allocations GROUP BY currency, accountant_id HAVING sum(cost) > 0
),
split_inputs AS (
    SELECT l.line_id AS split_id, w.accountant_id, w.weight,
           sum(w.weight) OVER (PARTITION BY l.line_id)                                         AS total_weight,
           l.app_part                                                                          AS amount
    FROM account_level_lines l
    JOIN weights w ON w.product = l.product AND w.currency = l.currency
    WHERE l.app_part <> 0
),
largest_remainder AS (
-- include: largest_remainder
)
SELECT
    l.line_id AS fact_id, l.billing_period, l.usage_hour, l.span_hours, l.service, l.usage_type,
    l.line_item_type, l.currency, l.cost AS fact_cost, r.accountant_id, 'proportional' AS allocation,
    CAST(NULL AS VARCHAR) AS driver, CAST(NULL AS DECIMAL(38, 10)) AS driver_quantity,
    CAST(r.units * CAST('0.0000000001' AS DECIMAL(11, 10)) AS DECIMAL(38, 10))               AS cost
FROM largest_remainder r
JOIN account_level_lines l ON l.line_id = r.split_id
