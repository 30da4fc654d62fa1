-- replayed_cost_facts: hourly_cost_facts ($source) as a CUR delivery that stopped at $covered_through would have
-- held them (nowcast_accuracy's replays). Other months as they are; of the replayed month $billing_period:
-- * the facts that end by then (a fact ends span_hours after it starts; epoch seconds: both engines spell it so);
-- * its tax so far. AWS delivers the month's tax with every delivery, dated the whole month and levied on the
--   charges to date (both real mid-month deliveries in ../shared/samples carry it), so a month-long Tax line is
--   replayed as the final one x the charges of its account, product code and currency delivered by then / those
--   of the month (charges: every line but the account-level ones; clamped to [0, 1]; a line with no charges of
--   its own to be levied on is left out), exact to 1e-10, rounded half away from zero (rounded_ratio.sql).
-- Credits, refunds and discounts dated the whole month are left out: AWS applies them when the month closes.
-- $billing_period / $covered_through are literals the caller formats (a view takes no parameters).
WITH month AS (
    SELECT *, epoch(usage_hour) + span_hours * 3600 <= epoch($covered_through) AS delivered
    FROM $source
    WHERE billing_period = $billing_period
),
charges AS (
    SELECT usage_account_id, coalesce(product_code, service) AS product, currency,
           CAST(sum(CASE WHEN delivered THEN unblended_cost ELSE 0 END) * 10000000000 AS DECIMAL(38, 0)) AS so_far,
           CAST(sum(unblended_cost) * 10000000000 AS DECIMAL(38, 0))                                   AS month_total
    FROM month
    WHERE line_item_type NOT IN ('Tax', 'Credit', 'Refund', 'Adjustment') AND line_item_type NOT LIKE '%Discount'
    GROUP BY usage_account_id, coalesce(product_code, service), currency
),
tax_lines AS (
    SELECT m.*,
           row_number() OVER (ORDER BY m.usage_hour, m.span_hours, m.usage_account_id, m.service, m.product_code,
                                       m.usage_type, m.operation, m.resource_id, m.currency,
                                       m.unblended_cost)                                          AS tax_id,
           least(greatest(c.so_far, 0), c.month_total)                                          AS n,
           c.month_total                                                                        AS d
    FROM month m
    JOIN charges c
      ON c.usage_account_id IS NOT DISTINCT FROM m.usage_account_id
     AND c.product IS NOT DISTINCT FROM coalesce(m.product_code, m.service) AND c.currency = m.currency
    WHERE m.line_item_type = 'Tax' AND NOT m.delivered AND c.month_total > 0
),
-- each of the three cost columns a row (metric 1, 2, 3), so the exact arithmetic is written once
amounts AS (
    SELECT t.tax_id, k.metric, t.n, t.d,
           CASE k.metric WHEN 1 THEN t.unblended_cost WHEN 2 THEN t.amortized_cost ELSE t.net_amortized_cost END
                                                                                                AS amount
    FROM tax_lines t
    CROSS JOIN (SELECT 1 AS metric UNION ALL SELECT 2 UNION ALL SELECT 3) k
),
-- round(|amount| n / d), exactly
ratio_inputs AS (
    SELECT *,
           CAST(floor(abs(amount) * 10) AS DECIMAL(38, 0))                                      AS c_hi,
           CAST(abs(amount) * 10000000000 AS DECIMAL(38, 0)) % 1000000000                        AS c_lo
    FROM amounts
),
rounded AS (
-- include: rounded_ratio
),
tax_so_far AS (
    SELECT tax_id, metric,
           CAST(CASE WHEN amount < 0 THEN -1 ELSE 1 END * part_units AS DECIMAL(38, 0))
             * CAST('0.0000000001' AS DECIMAL(11, 10))                                          AS cost
    FROM rounded
    WHERE amount IS NOT NULL
),
levied AS (
    SELECT tax_id,
           max(CASE WHEN metric = 1 THEN cost END) AS unblended_cost,
           max(CASE WHEN metric = 2 THEN cost END) AS amortized_cost,
           max(CASE WHEN metric = 3 THEN cost END) AS net_amortized_cost
    FROM tax_so_far
    GROUP BY tax_id
)
SELECT billing_period, usage_hour, span_hours, usage_account_id, line_item_type, service, usage_type, operation,
       resource_id, accountant_id, application, environment, cost_center, currency, in_scope, usage_amount,
       unblended_cost, amortized_cost, net_amortized_cost, line_items, delivery_id, product_code
FROM $source
WHERE billing_period <> $billing_period
UNION ALL
SELECT billing_period, usage_hour, span_hours, usage_account_id, line_item_type, service, usage_type, operation,
       resource_id, accountant_id, application, environment, cost_center, currency, in_scope, usage_amount,
       unblended_cost, amortized_cost, net_amortized_cost, line_items, delivery_id, product_code
FROM month
WHERE delivered
UNION ALL
SELECT t.billing_period, t.usage_hour, t.span_hours, t.usage_account_id, t.line_item_type, t.service, t.usage_type,
       t.operation, t.resource_id, t.accountant_id, t.application, t.environment, t.cost_center, t.currency,
       t.in_scope, t.usage_amount, CAST(l.unblended_cost AS DECIMAL(38, 10)), CAST(l.amortized_cost AS DECIMAL(38, 10)),
       CAST(l.net_amortized_cost AS DECIMAL(38, 10)), t.line_items, t.delivery_id, t.product_code
FROM tax_lines t
JOIN levied l ON l.tax_id = t.tax_id
