-- pricing_feedback: what each usage driver really cost per unit this month, against the pricing file's constant.
-- Per service x driver: quantity = the month's measured usage of the driver (usage_shares: every tenant, the
-- usage with no known owner, every table/bucket); actual_cost = the in-scope cost that was split by that driver
-- (tenant_costs rows whose driver it is: shared by hour/day/month, credits included). implied_unit_cost =
-- actual_cost / quantity, computed exactly in integers and rounded half up (away from zero) to 1e-18.
-- 'combined' (cost no single driver pays for, e.g. Lambda data transfer) has no quantity and no constant: it is
-- listed so its cost is visible, never flagged. Direct cost (tagged resources) has no driver and is not here.
-- Inputs: usage_shares, tenant_costs (the month), driver_prices (service, driver, unit_price).
WITH usage AS (
    SELECT service, driver, sum(quantity) AS quantity
    FROM usage_shares
    WHERE billing_period = $billing_period
    GROUP BY ALL
),
cost AS (
    SELECT service, driver, currency, sum(cost) AS actual_cost
    FROM tenant_costs
    WHERE billing_period = $billing_period AND driver IS NOT NULL
    GROUP BY ALL
),
drivers AS (
    SELECT
        coalesce(c.service, u.service)                                          AS service,
        coalesce(c.driver, u.driver)                                            AS driver,
        coalesce(c.currency, $currency)                                         AS currency,
        u.quantity                                                              AS quantity,
        coalesce(c.actual_cost, 0)                                              AS actual_cost,
        CAST(p.unit_price AS DECIMAL(38, 18))                                   AS configured_unit_cost
    FROM cost c
    FULL OUTER JOIN usage u ON u.service = c.service AND u.driver = c.driver
    LEFT JOIN driver_prices p ON p.service = coalesce(c.service, u.service) AND p.driver = coalesce(c.driver, u.driver)
),
-- implied_unit_cost = actual_cost / quantity rounded half away from zero to 1e-18, exactly, in integers that
-- fit DECIMAL(38, 0) on DuckDB and Spark alike: a = |actual_cost| and q = quantity in units of 1e-10. The whole
-- part a / q (below 1e15, so exact even through DuckDB's DOUBLE division), then the remainder's 18 digits in two
-- steps of 9 (each quotient below 1e9+1), the last rounded: floor((2 r + q) / 2 q).
units AS (
    SELECT *,
           abs(CAST(actual_cost * 10000000000 AS DECIMAL(38, 0)))               AS a,
           CASE WHEN quantity > 0 THEN CAST(quantity * 10000000000 AS DECIMAL(38, 0)) END AS q
    FROM drivers
),
whole_part AS (
    SELECT *,
           CAST(round((a - a % q) / q) AS DECIMAL(38, 0))                       AS whole,
           (a % q) * 1000000000                                                 AS r1
    FROM units
),
first_digits AS (
    SELECT *,
           CAST(round((r1 - r1 % q) / q) AS DECIMAL(38, 0))                     AS digits_1,
           (r1 % q) * 1000000000                                                AS r2
    FROM whole_part
),
implied AS (
    SELECT *,
           CAST(CAST(CASE WHEN actual_cost < 0 THEN -1 ELSE 1 END * (
               whole * 1000000000000000000 + digits_1 * 1000000000
               + CAST(round((2 * r2 + q - (2 * r2 + q) % (2 * q)) / (2 * q)) AS DECIMAL(38, 0))
           ) AS DECIMAL(38, 0)) * CAST('0.000000000000000001' AS DECIMAL(19, 18)) AS DECIMAL(38, 18))
                                                                                AS implied_unit_cost
    FROM first_digits
),
judged AS (
    SELECT *,
           CASE WHEN driver = 'combined' OR implied_unit_cost IS NULL THEN false
                WHEN configured_unit_cost IS NULL OR configured_unit_cost = 0 THEN implied_unit_cost <> 0
                -- compared in DECIMAL, not through the rounded percentage
                ELSE abs(implied_unit_cost - configured_unit_cost) * 100
                     > CAST($threshold_pct AS DECIMAL(18, 6)) * configured_unit_cost
           END                                                                  AS flagged
    FROM implied
)
SELECT
    CAST($billing_period AS DATE)                                               AS billing_period,
    service,
    coalesce(types.resource_type, 'other')                                      AS resource_type,
    driver,
    currency,
    CAST(quantity AS DECIMAL(38, 10))                                           AS quantity,
    CAST(actual_cost AS DECIMAL(38, 10))                                        AS actual_cost,
    implied_unit_cost,
    configured_unit_cost,
    CASE WHEN configured_unit_cost <> 0 AND implied_unit_cost IS NOT NULL
         THEN CAST(round((CAST(implied_unit_cost AS DOUBLE) - CAST(configured_unit_cost AS DOUBLE)) * 100
                         / CAST(configured_unit_cost AS DOUBLE), 4) AS DECIMAL(38, 4)) END AS variance_pct,
    flagged,
    CASE WHEN flagged THEN CAST(round(implied_unit_cost, 12) AS DECIMAL(38, 12)) END AS suggested_unit_cost,
    $is_final                                                                   AS is_final
FROM judged
LEFT JOIN service_resource_types types USING (service)
