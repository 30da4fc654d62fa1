-- One CUR data file -> rows of cur_line_items (warehouse.sql), appended to the staging table.
--
-- {source} is the file projected onto AWS's Parquet column names (cur_columns.CUR_COLUMNS), already typed:
-- text with '' as NULL, money and quantities DECIMAL(38, 10), times TIMESTAMP in UTC, `tags` a MAP of user tags.
-- Columns the file lacks are typed NULLs there, so this statement is the same for every layout.
-- Parameters: $billing_period (the delivery's month), $has_net (the file has net_* columns), $delivery_id, and the
-- catalog's (catalog.Catalog.tag_parameters): tag keys, IAM principal tenant, Marketplace service.
-- `source_file` comes with the projection (one file, or each row's own where one statement reads several).
INSERT INTO {table} BY NAME
WITH items AS (
    {source}
),
-- A Savings Plan fee's unused commitment; an empty used commitment (a legacy CSV leaves what does not apply empty)
-- counts 0 on its own, so it does not zero the commitment beside it. An empty commitment to date leaves the unused
-- commitment unknown: NULL, so the fee counts 0 (as in the CUR query library), never 0 - used (a negative fee).
commitments AS (
    SELECT *, savings_plan_total_commitment_to_date - coalesce(savings_plan_used_commitment, 0)
                                                AS unused_commitment
    FROM items
),
-- A Savings Plan fee's net unused commitment is unused x net / gross. Taken here as exact integers (the product
-- in units of 1e-20, the gross in units of 1e-10), so that the division below is exact and the same on DuckDB
-- and Spark (a DECIMAL division is a DOUBLE on DuckDB). NULL on every other row.
fees AS (
    SELECT *,
        CASE WHEN $has_net AND line_item_line_item_type = 'SavingsPlanRecurringFee' THEN
            CAST(unused_commitment * 10000000000 AS DECIMAL(38, 0))
            * CAST(CASE WHEN line_item_unblended_cost <> 0 THEN line_item_net_unblended_cost
                        ELSE savings_plan_net_amortized_upfront_commitment_for_billing_period END
                   * 10000000000 AS DECIMAL(38, 0))
        END                                     AS fee_product,
        CASE WHEN $has_net AND line_item_line_item_type = 'SavingsPlanRecurringFee' THEN
            CAST(CASE WHEN line_item_unblended_cost <> 0 THEN line_item_unblended_cost
                      ELSE savings_plan_amortized_upfront_commitment_for_billing_period END
                 * 10000000000 AS DECIMAL(38, 0))
        END                                     AS fee_gross
    FROM commitments
),
fee_parts AS (
    SELECT *, abs(fee_product) AS fee_n, abs(fee_gross) AS fee_d,
           coalesce(tags[$tenant_tag], tags[$principal_tenant_tag],
                    nullif(regexp_extract(line_item_iam_principal, $principal_tenant_pattern, 1), '')) AS tenant_raw,
           (fee_product < 0) <> (fee_gross < 0) AS fee_negative
    FROM fees
)
SELECT
    COALESCE(CAST(date_trunc('month', bill_billing_period_start_date) AS DATE), $billing_period) AS billing_period,
    line_item_usage_start_date                  AS usage_start,
    line_item_usage_end_date                    AS usage_end,
    bill_payer_account_id                       AS payer_account_id,
    line_item_usage_account_id                  AS usage_account_id,
    identity_line_item_id                       AS line_item_id,
    -- a FOCUS correction giving back usage of a period already invoiced is a refund, as CUR writes one (its
    -- ChargeCategory stays that of the charge corrected: as Usage it would read as a negative usage line); usage a
    -- commitment covered was billed 0, so its correction gives back effective cost only
    CASE WHEN charge_class = 'Correction' AND line_item_line_item_type = 'Usage'
              AND (line_item_unblended_cost < 0 OR effective_cost < 0)
         THEN 'Refund'
         -- FOCUS usage a commitment covered is CUR's covered usage: a Savings Plan's (CommitmentDiscountCategory
         -- 'Spend') or a reservation's ('Usage'), so its effective cost charged to no tenant under `unblended` is
         -- counted as CUR's is (tenant_costs' covered_cost_not_charged)
         WHEN line_item_line_item_type = 'Usage' AND commitment_discount_status = 'Used'
              AND commitment_discount_category IN ('Spend', 'Usage')
         THEN CASE commitment_discount_category WHEN 'Spend' THEN 'SavingsPlanCoveredUsage' ELSE 'DiscountedUsage' END
         ELSE line_item_line_item_type END      AS line_item_type,
    -- A model sold through AWS Marketplace (billing entity `AWS Marketplace`, usage type like
    -- `USE1-MP:USE1_InputTokenCount-Units`) is the catalog's service (Bedrock); its usage type does not name the
    -- model, so the product name is appended to it ("... (Claude 3.5 Sonnet (Amazon Bedrock Edition))").
    CASE WHEN bill_billing_entity = $marketplace_billing_entity
              AND contains(line_item_usage_type, $marketplace_usage_type)
         THEN $marketplace_service
         -- another product code AWS bills a catalog service's usage under (catalog.json `product_codes`: Claude 4
         -- tokens are `AmazonBedrockService`), as that service, so its lines are split by the service's drivers
         {product_code_services}
         ELSE line_item_product_code END AS service,
    CASE WHEN bill_billing_entity = $marketplace_billing_entity
              AND contains(line_item_usage_type, $marketplace_usage_type) AND product_product_name IS NOT NULL
         THEN line_item_usage_type || ' (' || product_product_name || ')'
         ELSE line_item_usage_type END          AS usage_type,
    line_item_operation                         AS operation,
    line_item_resource_id                       AS resource_id,
    line_item_line_item_description             AS description,
    line_item_usage_amount                      AS usage_amount,
    line_item_currency_code                     AS currency,
    line_item_unblended_cost                    AS unblended_cost,

    -- Amortized cost as the AWS CUR query library computes it: commitments are spread over the usage they
    -- cover, so upfront fees and negations count 0 and covered usage counts at its effective cost.
    -- FOCUS exports carry it ready-made (EffectiveCost). A NULL component (an empty CSV cell) counts 0 on its
    -- own, not the whole fee.
    COALESCE(effective_cost, CASE
        WHEN line_item_line_item_type = 'SavingsPlanCoveredUsage' THEN savings_plan_savings_plan_effective_cost
        WHEN line_item_line_item_type = 'SavingsPlanRecurringFee'
            THEN unused_commitment
        WHEN line_item_line_item_type IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0
        WHEN line_item_line_item_type = 'DiscountedUsage' THEN reservation_effective_cost
        WHEN line_item_line_item_type = 'RIFee'
            THEN coalesce(reservation_unused_amortized_upfront_fee_for_billing_period, 0)
                 + coalesce(reservation_unused_recurring_fee, 0)
        WHEN line_item_line_item_type = 'Fee' AND reservation_reservation_a_r_n IS NOT NULL THEN 0  -- RI upfront
        ELSE line_item_unblended_cost
    END, 0)                                     AS amortized_cost,

    -- The same with the net_* (after-discount) columns; NULL when the delivery has none. Where the delivery has
    -- them but a line's net column is empty (a real CUR 2.0 export leaves them all empty), that line falls back to
    -- the non-net figure, never to 0, as the AWS Cloud Intelligence Dashboards do. Savings Plans have no
    -- net commitment-to-date column, so the unused commitment is scaled by the fee's net/gross ratio (as the
    -- AWS Cloud Intelligence Dashboards do); that ratio is the one place a division enters, rounded half away
    -- from zero to 1e-10: whole units (n / (d * 1e10), below 1e15 so exact even through a DOUBLE) plus the rest
    -- in units of 1e-10, floor((2 r + d) / 2 d).
    CASE WHEN $has_net THEN COALESCE(CASE
        WHEN line_item_line_item_type = 'SavingsPlanCoveredUsage'
            THEN coalesce(savings_plan_net_savings_plan_effective_cost, savings_plan_savings_plan_effective_cost)
        WHEN line_item_line_item_type = 'SavingsPlanRecurringFee' THEN CASE
            WHEN coalesce(fee_d, 0) = 0 OR fee_product IS NULL
                THEN unused_commitment
            ELSE CAST(CASE WHEN fee_negative THEN -1 ELSE 1 END * (
                CAST(round((fee_n - fee_n % (fee_d * 10000000000)) / (fee_d * 10000000000)) AS DECIMAL(38, 0))
                + CAST(round((2 * (fee_n % (fee_d * 10000000000)) + fee_d
                              - (2 * (fee_n % (fee_d * 10000000000)) + fee_d) % (2 * fee_d)) / (2 * fee_d))
                       AS DECIMAL(38, 0)) * CAST('0.0000000001' AS DECIMAL(11, 10))) AS DECIMAL(38, 10))
        END
        WHEN line_item_line_item_type IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0
        WHEN line_item_line_item_type = 'DiscountedUsage'
            THEN coalesce(reservation_net_effective_cost, reservation_effective_cost)
        WHEN line_item_line_item_type = 'RIFee'
            THEN coalesce(reservation_net_unused_amortized_upfront_fee_for_billing_period,
                          reservation_unused_amortized_upfront_fee_for_billing_period, 0)
                 + coalesce(reservation_net_unused_recurring_fee, reservation_unused_recurring_fee, 0)
        WHEN line_item_line_item_type = 'Fee' AND reservation_reservation_a_r_n IS NOT NULL THEN 0
        ELSE coalesce(line_item_net_unblended_cost, line_item_unblended_cost)
    END, 0) END                                 AS net_amortized_cost,

    bill_invoice_id                             AS invoice_id,
    tags,
    -- the tenant (docs/attribution-rules.md, "Tenant ids"): the resource's tag (its key is configuration,
    -- catalog.json `tag_keys`), else the tag of the IAM principal that called (CUR 2.0, Bedrock), else a principal
    -- ARN the catalog's pattern reads a tenant from; trimmed of spaces, empty = untagged; a reserved word or a
    -- control character is never a tenant: 'unattributed' (the raw value stays in `tags`)
    CASE WHEN trim(tenant_raw) = '' THEN NULL
         WHEN lower(trim(tenant_raw)) IN ('unattributed', 'total')
           OR regexp_matches(tenant_raw, '[\x00-\x1f\x7f]') THEN 'unattributed'
         ELSE trim(tenant_raw) END              AS accountant_id,
    tags[$application_tag]                      AS application,
    tags[$environment_tag]                      AS environment,
    tags[$cost_center_tag]                      AS cost_center,
    source_file,
    $delivery_id                                AS delivery_id,
    -- the line's discounts as its discount column states them: never part of a cost. Legacy CUR repeats there what
    -- its discount line items (BundledDiscount, EdpDiscount, ...) hold; a CUR 2.0 export without "manual discount
    -- compatibility" may hold discounts there only (cur_line_items' metadata says so, docs/attribution-rules.md)
    discount_total_discount                     AS column_discount,
    -- the product code as AWS wrote it: a Marketplace model's tax and credits carry only that (no usage type),
    -- and hourly_cost_facts gives them the service its usage lines were read as
    line_item_product_code                      AS product_code
FROM fee_parts
