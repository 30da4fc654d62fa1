-- account_level_lines: the month's account-level facts (docs/attribution-rules.md, "Account-level lines") with
-- their policy and the application's part, exactly. Account-level: no `application` tag and line item type Tax,
-- Credit, Refund, any discount (EdpDiscount, PrivateRateDiscount, BundledDiscount, SppDiscount, DistributorDiscount,
-- RiVolumeDiscount: every type AWS names `...Discount`), a FOCUS export's Adjustment, or Fee without a resource id
-- except a reservation's upfront fee (the Fee the amortized metric spreads over the reservation's usage, so its
-- amortized cost is 0: cur_line_items.sql): a commitment bought for a year or three is out of scope, as a Savings
-- Plan's upfront fee and a FOCUS Purchase are, never split over one month's tenants.
-- proportional: part = cost x N / D, N = the application's in-scope cost of the line's product code, currency and
--   period, D = the whole bill's cost of that product code on the same basis, account-level lines excluded; no
--   product code -> all product codes. The product code is AWS's (hourly_cost_facts.product_code; the service
--   where a warehouse has none): a Marketplace model's tax goes by that model's charges, not all of Bedrock's. N / D is taken as 0 when N or D is not positive and as 1 when N > D.
--   Rounded half away from zero to 1e-10 (the largest remainder between the application and the rest of the bill).
-- company: part 0, the whole line is kept by the company.
-- Inputs: hourly_cost_facts, account_level_policies (line_item_type, policy). Parameters: $billing_period,
-- $cost_metric. Used by tenant_costs (split among tenants) and by its bill conservation check.
WITH facts AS (
    SELECT *,
           CASE $cost_metric WHEN 'unblended' THEN unblended_cost
                             WHEN 'amortized' THEN amortized_cost
                             ELSE coalesce(net_amortized_cost, amortized_cost) END               AS cost,
           coalesce(product_code, service, '')                                                   AS billed_product,
           NOT in_scope AND coalesce(application, '') = ''
             AND (line_item_type IN ('Tax', 'Credit', 'Refund', 'Adjustment') OR line_item_type LIKE '%Discount'
                  OR (line_item_type = 'Fee' AND coalesce(resource_id, '') = ''
                      AND NOT (amortized_cost = 0 AND unblended_cost <> 0)))                      AS account_level
    FROM hourly_cost_facts
    WHERE billing_period = $billing_period
),
-- per product code ('*': all product codes) and currency: N (in scope) and D (the bill), account-level excluded
bases AS (
    SELECT billed_product AS product, currency,
           sum(cost) FILTER (WHERE in_scope) AS app_cost, sum(cost) AS bill_cost
    FROM facts WHERE NOT account_level GROUP BY ALL
    UNION ALL
    SELECT '*', currency, sum(cost) FILTER (WHERE in_scope), sum(cost)
    FROM facts WHERE NOT account_level GROUP BY ALL
),
-- the account-level lines, the input of rounded_ratio
ratio_inputs AS (
    SELECT
        row_number() OVER (ORDER BY f.usage_hour, f.service, f.billed_product, f.usage_type, f.operation,
                                    f.resource_id, f.line_item_type, f.usage_account_id, f.currency,
                                    f.span_hours) AS line_id,
        f.billing_period, f.usage_hour, f.span_hours, f.usage_account_id, f.line_item_type, f.service, f.usage_type,
        f.operation, f.resource_id, f.currency, f.cost,
        CASE WHEN f.billed_product = '' THEN '*' ELSE f.billed_product END                   AS product,
        coalesce(p.policy, 'proportional')                                                     AS policy,
        CAST(abs(f.cost) * 10000000000 AS DECIMAL(38, 0))                                      AS c,
        CAST(floor(abs(f.cost) * 10) AS DECIMAL(38, 0))                                        AS c_hi,
        CAST(abs(f.cost) * 10000000000 AS DECIMAL(38, 0)) % 1000000000                         AS c_lo,
        CASE WHEN b.app_cost > 0 AND b.bill_cost > 0
             THEN CAST(least(b.app_cost, b.bill_cost) * 10000000000 AS DECIMAL(38, 0)) END     AS n,
        CAST(b.bill_cost * 10000000000 AS DECIMAL(38, 0))                                      AS d
    FROM facts f
    LEFT JOIN account_level_policies p ON p.line_item_type = f.line_item_type
    LEFT JOIN bases b
      ON b.product = CASE WHEN f.billed_product = '' THEN '*' ELSE f.billed_product END AND b.currency = f.currency
    WHERE f.account_level AND f.cost <> 0
),
-- round(c n / d) without overflow, exactly
rounded AS (
-- include: rounded_ratio
)
SELECT
    line_id, billing_period, usage_hour, span_hours, usage_account_id, line_item_type, service, usage_type,
    operation, resource_id, currency, product, policy, cost,
    CAST(CASE WHEN policy <> 'proportional' OR n IS NULL THEN 0
              ELSE CASE WHEN cost < 0 THEN -1 ELSE 1 END * part_units END AS DECIMAL(38, 0))
        * CAST('0.0000000001' AS DECIMAL(11, 10))                                              AS app_part
FROM rounded
