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
implied AS (
    SELECT *,
           CASE WHEN quantity > 0 THEN
               CAST(CAST(
                   sign(CAST(actual_cost * 10000000000 AS HUGEINT))
                   * ((abs(CAST(actual_cost * 10000000000 AS HUGEINT)) * CAST('1000000000000000000' AS HUGEINT)
                       + CAST(quantity * 10000000000 AS HUGEINT) // 2)
                      // CAST(quantity * 10000000000 AS HUGEINT))
               AS DECIMAL(38, 0)) * CAST('0.000000000000000001' AS DECIMAL(19, 18)) AS DECIMAL(38, 18))
           END                                                                  AS implied_unit_cost
    FROM drivers
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
