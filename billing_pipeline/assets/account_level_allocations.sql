-- account_level_allocations: the application's part of each proportional account-level line (account_level_lines)
-- split among the tenants and `unattributed` by their share of the application's cost of the line's product code
-- ('*': all product codes) and currency in the month (cost_allocations; tenants with a positive cost of it),
-- exactly in units of 1e-10 by largest remainder, ties by accountant_id; allocation `proportional`.
-- Same columns as cost_allocations, so tenant_costs sums both. Inputs: account_level_lines, cost_allocations.
WITH weights AS (
    SELECT coalesce(service, '') AS product, currency, accountant_id,
           CAST(sum(cost) * 10000000000 AS DECIMAL(38, 0)) AS weight
    FROM cost_allocations GROUP BY ALL HAVING sum(cost) > 0
    UNION ALL
    SELECT '*', currency, accountant_id, CAST(sum(cost) * 10000000000 AS DECIMAL(38, 0))
    FROM cost_allocations GROUP BY currency, accountant_id HAVING sum(cost) > 0
),
split_inputs AS (
    SELECT l.line_id, w.accountant_id, w.weight,
           sum(w.weight) OVER (PARTITION BY l.line_id)                                         AS total_weight,
           CAST(l.app_part * 10000000000 AS DECIMAL(38, 0))                                    AS part_units,
           CAST(floor(abs(l.app_part) * 10) AS DECIMAL(38, 0))                                 AS part_hi,
           CAST(abs(l.app_part) * 10000000000 AS DECIMAL(38, 0)) % 1000000000                  AS part_lo
    FROM account_level_lines l
    JOIN weights w ON w.product = l.product AND w.currency = l.currency
    WHERE l.app_part <> 0
),
high_limb AS (
    SELECT *,
           CAST(round((part_hi * weight - (part_hi * weight) % total_weight) / total_weight) AS DECIMAL(38, 0)) AS q_hi,
           (part_hi * weight) % total_weight * 1000000000 + part_lo * weight                   AS t_lo
    FROM split_inputs
),
floored AS (
    SELECT *,
           q_hi * 1000000000
             + CAST(round((t_lo - t_lo % total_weight) / total_weight) AS DECIMAL(38, 0))      AS base_units,
           t_lo % total_weight                                                                 AS remainder
    FROM high_limb
),
largest_remainder AS (
    SELECT *,
           abs(part_units) - sum(base_units) OVER (PARTITION BY line_id)                       AS units_left,
           row_number() OVER (PARTITION BY line_id ORDER BY remainder DESC, accountant_id)     AS remainder_rank
    FROM floored
)
SELECT
    l.line_id AS fact_id, l.billing_period, l.usage_hour, l.span_hours, l.service, l.usage_type,
    l.line_item_type, l.currency, l.cost AS fact_cost, r.accountant_id, 'proportional' AS allocation,
    CAST(NULL AS VARCHAR) AS driver, CAST(NULL AS DECIMAL(38, 10)) AS driver_quantity,
    CAST(CAST(CASE WHEN r.part_units < 0 THEN -1 ELSE 1 END
              * (r.base_units + CASE WHEN r.remainder_rank <= r.units_left THEN 1 ELSE 0 END) AS DECIMAL(38, 0))
         * CAST('0.0000000001' AS DECIMAL(11, 10)) AS DECIMAL(38, 10))                        AS cost
FROM largest_remainder r
JOIN account_level_lines l ON l.line_id = r.line_id
