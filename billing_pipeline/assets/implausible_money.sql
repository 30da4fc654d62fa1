-- implausible_money: the month's CUR lines whose money is not believable: a Usage line with a negative cost
-- (credits and refunds have their own line item types), or a line whose cost exceeds $max_line_cost in absolute
-- value (any metric). Shown in the asset's metadata; invoicing of the month is held while any exist.
SELECT
    billing_period,
    source_file,
    line_item_id,
    line_item_type,
    service,
    usage_type,
    resource_id,
    accountant_id,
    currency,
    unblended_cost,
    amortized_cost,
    net_amortized_cost,
    CASE WHEN line_item_type = 'Usage'
              AND (unblended_cost < 0 OR amortized_cost < 0 OR coalesce(net_amortized_cost, 0) < 0)
         THEN 'negative Usage line'
         ELSE 'beyond the bound' END                                            AS reason
FROM cur_line_items
WHERE billing_period = $billing_period
  AND ((line_item_type = 'Usage'
        AND (unblended_cost < 0 OR amortized_cost < 0 OR coalesce(net_amortized_cost, 0) < 0))
       OR abs(unblended_cost) > $max_line_cost
       OR abs(amortized_cost) > $max_line_cost
       OR abs(coalesce(net_amortized_cost, 0)) > $max_line_cost)
ORDER BY source_file, line_item_id, usage_type, resource_id
