-- invoices: what each tenant is charged in Stripe per month, one row per Stripe invoice item (charge or
-- adjustment), or per computed line while the month is provisional (kind = status = 'preview'). Written by the
-- `invoices` asset, one billing period at a time (delete-then-insert), from what Stripe holds after the run.
CREATE TABLE IF NOT EXISTS invoices (
    billing_period      DATE NOT NULL,
    accountant_id       VARCHAR NOT NULL,
    resource_type       VARCHAR NOT NULL,       -- lambda, dynamodb, s3, agentcore, bedrock, other, minimum_fee
    stripe_customer_id  VARCHAR,                -- NULL in a preview for a tenant not yet in Stripe
    stripe_subscription_id VARCHAR,
    stripe_invoice_item_id VARCHAR,             -- NULL in a preview
    stripe_invoice_id   VARCHAR,                -- the invoice the item was swept into; NULL while pending
    amount_cents        BIGINT NOT NULL,        -- Stripe's integer amount (cents; yen for JPY); adjustments may be negative
    currency            VARCHAR NOT NULL,       -- lower case ISO code, as Stripe writes it
    kind                VARCHAR NOT NULL,       -- charge | adjustment | preview
    status              VARCHAR NOT NULL,       -- preview | pending | draft | open | past_due | paid | void
                                                -- | uncollectible
    attributed_cost     DECIMAL(38, 10),        -- the AWS cost the charge was computed from (this run's)
    charge_amount       DECIMAL(38, 10),        -- the charge before rounding to cents (this run's; to 1e-10)
    updated_at          TIMESTAMP NOT NULL      -- when the row was read back from Stripe (UTC)
);
