-- hourly_cost_facts: the month's line items summed to the grain at which cost is attributed.
-- One row per usage hour x usage account x line item type x service (x the product code AWS billed it under) x
-- usage type x operation x resource x owner tags x currency. Every line item lands in exactly one fact (credits, refunds, tax and fees keep their own
-- line_item_type), so the facts add up to the bill.
WITH read_as AS (
    -- product codes whose lines the reader read as another service (a model sold through AWS Marketplace: its
    -- token lines are AmazonBedrock's): the month's account-level lines of that code (its tax, credits, refunds,
    -- which name no usage type) report as that service's too (they go by the product code: account_level_lines)
    SELECT product_code, min(service) AS service
    FROM cur_line_items
    WHERE billing_period = $billing_period AND product_code <> service
    GROUP BY product_code
    HAVING count(DISTINCT service) = 1
),
lines AS (
    SELECT l.billing_period, l.usage_start, l.usage_end, l.usage_account_id, l.line_item_type,
           -- (only those: other usage of the code, which the reader did not read as the service, stays its own)
           CASE WHEN l.service = l.product_code
                     AND (l.line_item_type IN ('Tax', 'Credit', 'Refund', 'Adjustment', 'Fee')
                          OR l.line_item_type LIKE '%Discount')
                THEN coalesce(r.service, l.service) ELSE l.service END                              AS service,
           l.usage_type, l.operation, l.resource_id, l.accountant_id, l.application, l.environment, l.cost_center,
           l.currency, l.usage_amount, l.unblended_cost, l.amortized_cost, l.net_amortized_cost, l.product_code
    FROM cur_line_items AS l
    LEFT JOIN read_as AS r ON r.product_code = l.product_code
    WHERE l.billing_period = $billing_period
      -- one slice of the month by usage start (whole hours, so a fact never spans two slices): a large month is
      -- aggregated a slice at a time, within the warehouse's memory limit
      AND l.usage_start >= $slice_start AND l.usage_start < $slice_end
)
SELECT
    billing_period,
    date_trunc('hour', usage_start)                                            AS usage_hour,
    -- lines longer than an hour (monthly fees, tax, daily-granularity reports) are split by a wider window
    greatest(1, CAST(ceil((epoch(usage_end) - epoch(date_trunc('hour', usage_start))) / 3600) AS INTEGER))
                                                                               AS span_hours,
    usage_account_id,
    line_item_type,
    service,
    -- the product code AWS billed the lines under: account-level lines (tax, credits) go by it
    product_code,
    usage_type,
    operation,
    resource_id,
    accountant_id,
    application,
    environment,
    cost_center,
    currency,
    coalesce(application = $application, false)                                AS in_scope,
    sum(usage_amount)                                                          AS usage_amount,
    sum(unblended_cost)                                                        AS unblended_cost,
    sum(amortized_cost)                                                        AS amortized_cost,
    sum(net_amortized_cost)                                                    AS net_amortized_cost,
    count(*)                                                                   AS line_items
FROM lines
GROUP BY ALL
