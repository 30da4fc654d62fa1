-- One CUR data file -> rows of cur_line_items (warehouse.sql), appended to the staging table.
--
-- {source} is the file projected onto AWS's Parquet column names (cur_columns.CUR_COLUMNS), already typed:
-- text with '' as NULL, money and quantities DECIMAL(38, 10), times TIMESTAMP in UTC, `tags` a MAP of user tags.
-- Columns the file lacks are typed NULLs there, so this statement is the same for every layout.
-- Parameters: $billing_period (the delivery's month), $has_net (the file has net_* columns),
-- $source_file, $delivery_id.
INSERT INTO {table} BY NAME
WITH items AS (
    {source}
)
SELECT
    COALESCE(CAST(date_trunc('month', bill_billing_period_start_date) AS DATE), $billing_period) AS billing_period,
    line_item_usage_start_date                  AS usage_start,
    line_item_usage_end_date                    AS usage_end,
    bill_payer_account_id                       AS payer_account_id,
    line_item_usage_account_id                  AS usage_account_id,
    identity_line_item_id                       AS line_item_id,
    line_item_line_item_type                    AS line_item_type,
    line_item_product_code                      AS service,
    line_item_usage_type                        AS usage_type,
    line_item_operation                         AS operation,
    line_item_resource_id                       AS resource_id,
    line_item_line_item_description             AS description,
    line_item_usage_amount                      AS usage_amount,
    line_item_currency_code                     AS currency,
    line_item_unblended_cost                    AS unblended_cost,

    -- Amortized cost as the AWS CUR query library computes it: commitments are spread over the usage they
    -- cover, so upfront fees and negations count 0 and covered usage counts at its effective cost.
    -- FOCUS exports carry it ready-made (EffectiveCost). A NULL component counts 0, as in the library's SUM.
    COALESCE(effective_cost, CASE
        WHEN line_item_line_item_type = 'SavingsPlanCoveredUsage' THEN savings_plan_savings_plan_effective_cost
        WHEN line_item_line_item_type = 'SavingsPlanRecurringFee'
            THEN savings_plan_total_commitment_to_date - savings_plan_used_commitment
        WHEN line_item_line_item_type IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0
        WHEN line_item_line_item_type = 'DiscountedUsage' THEN reservation_effective_cost
        WHEN line_item_line_item_type = 'RIFee'
            THEN reservation_unused_amortized_upfront_fee_for_billing_period + reservation_unused_recurring_fee
        WHEN line_item_line_item_type = 'Fee' AND reservation_reservation_a_r_n IS NOT NULL THEN 0  -- RI upfront
        ELSE line_item_unblended_cost
    END, 0)                                     AS amortized_cost,

    -- The same with the net_* (after-discount) columns; NULL when the delivery has none. Savings Plans have no
    -- net commitment-to-date column, so the unused commitment is scaled by the fee's net/gross ratio (as the
    -- AWS Cloud Intelligence Dashboards do); that ratio is the one place a division enters, rounded to 1e-10.
    CASE WHEN $has_net THEN COALESCE(CASE
        WHEN line_item_line_item_type = 'SavingsPlanCoveredUsage' THEN savings_plan_net_savings_plan_effective_cost
        WHEN line_item_line_item_type = 'SavingsPlanRecurringFee' THEN CASE
            WHEN line_item_unblended_cost <> 0 THEN CAST(
                (savings_plan_total_commitment_to_date - savings_plan_used_commitment)
                * line_item_net_unblended_cost / line_item_unblended_cost AS DECIMAL(38, 10))
            WHEN savings_plan_amortized_upfront_commitment_for_billing_period <> 0 THEN CAST(
                (savings_plan_total_commitment_to_date - savings_plan_used_commitment)
                * savings_plan_net_amortized_upfront_commitment_for_billing_period
                / savings_plan_amortized_upfront_commitment_for_billing_period AS DECIMAL(38, 10))
            ELSE savings_plan_total_commitment_to_date - savings_plan_used_commitment
        END
        WHEN line_item_line_item_type IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0
        WHEN line_item_line_item_type = 'DiscountedUsage' THEN reservation_net_effective_cost
        WHEN line_item_line_item_type = 'RIFee'
            THEN reservation_net_unused_amortized_upfront_fee_for_billing_period + reservation_net_unused_recurring_fee
        WHEN line_item_line_item_type = 'Fee' AND reservation_reservation_a_r_n IS NOT NULL THEN 0
        ELSE line_item_net_unblended_cost
    END, 0) END                                 AS net_amortized_cost,

    bill_invoice_id                             AS invoice_id,
    tags,
    map_extract_value(tags, 'accountant_id')    AS accountant_id,
    map_extract_value(tags, 'application')      AS application,
    map_extract_value(tags, 'environment')      AS environment,
    map_extract_value(tags, 'cost_center')      AS cost_center,
    $source_file                                AS source_file,
    $delivery_id                                AS delivery_id
FROM items
