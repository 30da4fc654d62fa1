-- cost_explorer_costs check: Cost Explorer's daily cost per tag value against the CUR-derived cost of the same
-- tenant and day. A tenant's CE group (the application's resources tagged accountant_id = tenant) is the tenant's
-- direct cost in tenant_costs; CE's group without the tag ('') is the application's untagged cost, i.e. all
-- of tenant_costs that is not direct (shared and unattributed). A missing side counts as 0. Only the days that
-- Cost Explorer was asked about ($query_end is exclusive) are compared.
WITH ce AS (
    SELECT usage_date, accountant_id, currency, sum(amount) AS amount
    FROM cost_explorer_costs
    WHERE billing_period = $billing_period
    GROUP BY ALL
),
cur AS (
    SELECT usage_date,
           CASE WHEN allocation = 'direct' THEN accountant_id ELSE '' END      AS accountant_id,
           currency,
           sum(cost)                                                           AS amount
    FROM tenant_costs
    WHERE billing_period = $billing_period AND usage_date < $query_end
      AND allocation <> 'proportional'  -- untagged account-level lines: not in Cost Explorer's tag filter
    GROUP BY ALL
)
SELECT
    usage_date,
    accountant_id,
    currency,
    coalesce(ce.amount, 0)                                                     AS cost_explorer,
    coalesce(cur.amount, 0)                                                    AS cur,
    coalesce(ce.amount, 0) - coalesce(cur.amount, 0)                           AS difference
FROM ce
FULL OUTER JOIN cur USING (usage_date, accountant_id, currency)
WHERE abs(coalesce(ce.amount, 0) - coalesce(cur.amount, 0)) > $tolerance
ORDER BY usage_date, accountant_id, currency
