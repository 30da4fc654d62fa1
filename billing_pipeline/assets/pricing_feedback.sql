-- pricing_feedback: what each usage driver really cost per unit this month, against the pricing file's constant,
-- from the bill's own quantities (docs/outputs.md, docs/attribution-rules.md "Pricing feedback").
-- Per service x driver x currency, accountant_id 'total':
--   bill_quantity, bill_cost  the in-scope CUR facts that carry usage (Usage, SavingsPlanCoveredUsage,
--       DiscountedUsage) whose usage type's first matching rule has the driver as its first preference (then the
--       usage amount is in the driver's unit; never 'combined'), all tenants and unattributed, direct included:
--       their usage amount and cost by the configured metric;
--   implied_unit_cost = bill_cost / bill_quantity, exact in integers, rounded half away from zero to 1e-18: never
--       over the log evidence, so evidence the logs miss cannot move it;
--   quantity = the evidence (usage_shares), actual_cost = the cost that was split by the driver (tenant_costs).
-- Per tenant (and 'unattributed') the same driver: its evidence quantity, its cost split by the driver, the
-- quantity the application recorded (estimated_usage rows whose operation the pricing file maps to the driver),
-- and the variance split in two (rounded to 1e-10): price_variance = evidence x (implied - configured): change the
-- constant; quantity_variance = (evidence - recorded) x configured: the application's usage tracking.
-- 'combined' (cost no single driver pays for) is listed with its cost, never flagged.
-- Inputs: hourly_cost_facts, usage_shares, tenant_costs, estimated_usage (the month), driver_prices (service,
-- driver, unit_price), estimate_operations (operation, service, driver), driver_rules (the catalog).
WITH facts AS (
    SELECT service, usage_type, currency, usage_amount,
           CASE $cost_metric WHEN 'unblended' THEN unblended_cost
                             WHEN 'amortized' THEN amortized_cost
                             ELSE coalesce(net_amortized_cost, amortized_cost) END             AS cost
    FROM hourly_cost_facts
    WHERE billing_period = $billing_period AND in_scope
      AND line_item_type IN ('Usage', 'SavingsPlanCoveredUsage', 'DiscountedUsage')
),
first_rules AS (
    SELECT u.service, u.usage_type, min(r.rule_order) AS rule_order
    FROM (SELECT DISTINCT service, usage_type FROM facts) u
    JOIN driver_rules r ON r.service = u.service AND contains(coalesce(u.usage_type, ''), r.usage_type_pattern)
    GROUP BY ALL
),
usage_type_drivers AS (
    SELECT fr.service, fr.usage_type, r.driver
    FROM first_rules fr
    JOIN driver_rules r ON r.service = fr.service AND r.rule_order = fr.rule_order AND r.driver_order = 1
    WHERE r.driver <> 'combined'
),
billed AS (
    -- the CUR's usage amount in the driver's unit (the catalog's units_per_billed_unit: log bytes per GB)
    SELECT f.service, d.driver, f.currency,
           sum(f.usage_amount * coalesce(du.units_per_billed_unit, CAST(1 AS DECIMAL(18, 0)))) AS bill_quantity,
           sum(f.cost) AS bill_cost
    FROM facts f JOIN usage_type_drivers d ON d.service = f.service AND d.usage_type = f.usage_type
    LEFT JOIN driver_units du ON du.service = d.service AND du.driver = d.driver
    GROUP BY f.service, d.driver, f.currency
),
-- ids outside the tenant registry as one 'unknown' (reported_tenants, as in the statements: the export lists no
-- such id)
evidence AS (
    SELECT s.service, s.driver, coalesce(r.reported_as, s.accountant_id) AS accountant_id, sum(s.quantity) AS quantity
    FROM usage_shares s LEFT JOIN reported_tenants r ON r.accountant_id = s.accountant_id
    WHERE s.billing_period = $billing_period
    GROUP BY ALL
),
split AS (
    SELECT t.service, t.driver, t.currency, coalesce(r.reported_as, t.accountant_id) AS accountant_id,
           sum(t.cost) AS actual_cost
    FROM tenant_costs t LEFT JOIN reported_tenants r ON r.accountant_id = t.accountant_id
    WHERE t.billing_period = $billing_period AND t.driver IS NOT NULL
    GROUP BY ALL
),
recorded AS (
    SELECT o.service, o.driver, coalesce(r.reported_as, e.accountant_id) AS accountant_id, sum(e.quantity) AS quantity
    FROM estimated_usage e JOIN estimate_operations o ON o.operation = e.operation
    LEFT JOIN reported_tenants r ON r.accountant_id = e.accountant_id
    WHERE e.billing_period = $billing_period
    GROUP BY ALL
),
drivers AS (
    SELECT coalesce(c.service, u.service, b.service)                                    AS service,
           coalesce(c.driver, u.driver, b.driver)                                       AS driver,
           coalesce(c.currency, b.currency, $currency)                                  AS currency,
           u.quantity, coalesce(c.actual_cost, 0) AS actual_cost, b.bill_quantity, b.bill_cost
    FROM (SELECT service, driver, currency, sum(actual_cost) AS actual_cost FROM split GROUP BY ALL) c
    FULL OUTER JOIN (SELECT service, driver, sum(quantity) AS quantity FROM evidence GROUP BY ALL) u
      ON u.service = c.service AND u.driver = c.driver
    FULL OUTER JOIN billed b
      ON b.service = coalesce(c.service, u.service) AND b.driver = coalesce(c.driver, u.driver)
     AND b.currency = coalesce(c.currency, $currency)
),
-- implied_unit_cost = bill_cost / bill_quantity rounded half away from zero to 1e-18, exactly, in integers that
-- fit DECIMAL(38, 0) on DuckDB and Spark alike: a = |bill_cost| and q = bill_quantity in units of 1e-10. The whole
-- part a / q (below 1e15, so exact even through DuckDB's DOUBLE division), then the remainder's 18 digits in two
-- steps of 9 (each quotient below 1e9+1), the last rounded: floor((2 r + q) / 2 q).
units AS (
    SELECT *,
           abs(CAST(coalesce(bill_cost, 0) * 10000000000 AS DECIMAL(38, 0)))            AS a,
           CASE WHEN bill_quantity > 0 THEN CAST(bill_quantity * 10000000000 AS DECIMAL(38, 0)) END AS q
    FROM drivers
),
whole_part AS (
    SELECT *,
           CAST(round((a - a % q) / q) AS DECIMAL(38, 0))                               AS whole,
           (a % q) * 1000000000                                                         AS r1
    FROM units
),
first_digits AS (
    SELECT *,
           CAST(round((r1 - r1 % q) / q) AS DECIMAL(38, 0))                             AS digits_1,
           (r1 % q) * 1000000000                                                        AS r2
    FROM whole_part
),
implied AS (
    SELECT d.*, CAST(p.unit_price AS DECIMAL(38, 18))                                   AS configured_unit_cost,
           CAST(CAST(CASE WHEN bill_cost < 0 THEN -1 ELSE 1 END * (
               whole * 1000000000000000000 + digits_1 * 1000000000
               + CAST(round((2 * r2 + q - (2 * r2 + q) % (2 * q)) / (2 * q)) AS DECIMAL(38, 0))
           ) AS DECIMAL(38, 0)) * CAST('0.000000000000000001' AS DECIMAL(19, 18)) AS DECIMAL(38, 18))
                                                                                        AS implied_unit_cost
    FROM first_digits d
    LEFT JOIN driver_prices p ON p.service = d.service AND p.driver = d.driver
),
judged AS (
    SELECT *,
           CASE WHEN driver = 'combined' OR implied_unit_cost IS NULL THEN false
                WHEN configured_unit_cost IS NULL OR configured_unit_cost = 0 THEN implied_unit_cost <> 0
                -- compared in DECIMAL, not through the rounded percentage
                ELSE abs(implied_unit_cost - configured_unit_cost) * 100
                     > CAST($threshold_pct AS DECIMAL(18, 6)) * configured_unit_cost
           END                                                                          AS flagged
    FROM implied
),
tenants AS (
    SELECT coalesce(s.service, e.service, r.service)                                    AS service,
           coalesce(s.driver, e.driver, r.driver)                                       AS driver,
           coalesce(s.accountant_id, e.accountant_id, r.accountant_id)                  AS accountant_id,
           coalesce(s.currency, $currency)                                              AS currency,
           e.quantity, coalesce(s.actual_cost, 0) AS actual_cost, r.quantity AS recorded_quantity
    FROM split s
    FULL OUTER JOIN evidence e ON e.service = s.service AND e.driver = s.driver AND e.accountant_id = s.accountant_id
    FULL OUTER JOIN recorded r
      ON r.service = coalesce(s.service, e.service) AND r.driver = coalesce(s.driver, e.driver)
     AND r.accountant_id = coalesce(s.accountant_id, e.accountant_id)
),
-- A tenant's two parts, x * y with x = its quantity (or quantity - recorded) and y = a unit cost difference or the
-- constant: x is taken as whole units plus a fraction below 1 so that neither product can leave DECIMAL(38)
-- however large the quantity (DECIMAL(38,10) x DECIMAL(38,18) has only 10 integer digits); rounded to 1e-10.
tenant_parts AS (
    SELECT t.*, j.implied_unit_cost, j.configured_unit_cost,
           coalesce(t.quantity, 0)                                                      AS x_price,
           coalesce(t.quantity, 0) - coalesce(t.recorded_quantity, 0)                   AS x_quantity,
           CAST(j.implied_unit_cost - j.configured_unit_cost AS DECIMAL(38, 18))        AS y_price,
           CAST(j.configured_unit_cost AS DECIMAL(38, 18))                              AS y_quantity
    FROM tenants t
    LEFT JOIN judged j ON j.service = t.service AND j.driver = t.driver AND j.currency = t.currency
),
rows_out AS (
    SELECT service, driver, currency, 'total' AS accountant_id, quantity, actual_cost, bill_quantity,
           CAST(NULL AS DECIMAL(38, 10)) AS recorded_quantity, implied_unit_cost, configured_unit_cost, flagged,
           CAST(NULL AS DECIMAL(38, 10)) AS price_variance, CAST(NULL AS DECIMAL(38, 10)) AS quantity_variance
    FROM judged
    UNION ALL
    SELECT service, driver, currency, accountant_id, quantity, actual_cost, CAST(NULL AS DECIMAL(38, 10)),
           recorded_quantity, implied_unit_cost, configured_unit_cost, false,
           CASE WHEN driver <> 'combined' THEN CAST(
               CAST(CAST(floor(x_price) AS DECIMAL(38, 0)) * y_price AS DECIMAL(38, 18))
               + CAST(CAST(x_price - floor(x_price) AS DECIMAL(38, 10)) * y_price AS DECIMAL(38, 18))
               AS DECIMAL(38, 10)) END,
           CASE WHEN driver <> 'combined' THEN CAST(
               CAST(CAST(floor(x_quantity) AS DECIMAL(38, 0)) * y_quantity AS DECIMAL(38, 18))
               + CAST(CAST(x_quantity - floor(x_quantity) AS DECIMAL(38, 10)) * y_quantity AS DECIMAL(38, 18))
               AS DECIMAL(38, 10)) END
    FROM tenant_parts
)
SELECT
    CAST($billing_period AS DATE)                                                       AS billing_period,
    service,
    coalesce(types.resource_type, 'other')                                              AS resource_type,
    driver,
    currency,
    accountant_id,
    CAST(quantity AS DECIMAL(38, 10))                                                   AS quantity,
    CAST(actual_cost AS DECIMAL(38, 10))                                                AS actual_cost,
    CAST(bill_quantity AS DECIMAL(38, 10))                                              AS bill_quantity,
    CAST(recorded_quantity AS DECIMAL(38, 10))                                          AS recorded_quantity,
    implied_unit_cost,
    configured_unit_cost,
    CASE WHEN configured_unit_cost <> 0 AND implied_unit_cost IS NOT NULL
         THEN CAST(round((CAST(implied_unit_cost AS DOUBLE) - CAST(configured_unit_cost AS DOUBLE)) * 100
                         / CAST(configured_unit_cost AS DOUBLE), 4) AS DECIMAL(38, 4)) END AS variance_pct,
    flagged,
    CASE WHEN flagged THEN CAST(round(implied_unit_cost, 12) AS DECIMAL(38, 12)) END   AS suggested_unit_cost,
    price_variance,
    quantity_variance,
    $is_final                                                                           AS is_final
FROM rows_out
LEFT JOIN service_resource_types types USING (service)
