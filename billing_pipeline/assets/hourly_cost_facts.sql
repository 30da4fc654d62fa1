-- hourly_cost_facts: the month's line items summed to the grain at which cost is attributed.
-- One row per usage hour x usage account x line item type x service (x the product code AWS billed it under) x
-- usage type x operation x resource x owner tags x currency. Every line item lands in exactly one fact (credits,
-- refunds, tax and fees keep their own line_item_type), so the facts add up to the bill.
SELECT
    billing_period,
    date_trunc('hour', usage_start)                                            AS usage_hour,
    -- lines longer than an hour (monthly fees, tax, daily-granularity reports) are split by a wider window
    greatest(1, CAST(ceil((epoch(usage_end) - epoch(date_trunc('hour', usage_start))) / 3600) AS INTEGER))
                                                                               AS span_hours,
    usage_account_id,
    line_item_type,
    -- a product code whose lines the reader read as another service (a model sold through AWS Marketplace: its
    -- token lines are AmazonBedrock's): its account-level lines (tax, credits, refunds, which name no usage type)
    -- report as that service's too: the placeholder, that service per such code, which hourly_cost_facts.py
    -- looks up once in the month's line items (else `service`)
    CASE WHEN service = product_code
              AND (line_item_type IN ('Tax', 'Credit', 'Refund', 'Adjustment', 'Fee') OR line_item_type LIKE '%Discount')
         THEN {service_read_as} ELSE service END                               AS service,
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
FROM cur_line_items
WHERE billing_period = $billing_period
  -- one slice of the month by usage start (whole hours, so a fact never spans two slices): a large month is
  -- aggregated a slice at a time, within the warehouse's memory limit
  AND usage_start >= $slice_start AND usage_start < $slice_end
GROUP BY ALL
