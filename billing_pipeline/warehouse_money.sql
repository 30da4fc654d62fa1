-- implausible_money: the CUR lines of the month that hold its invoicing (negative Usage lines, costs beyond
-- BILLING_MAX_LINE_COST). Written by the `implausible_money` asset, one billing period at a time.
CREATE TABLE IF NOT EXISTS implausible_money (
    billing_period      DATE NOT NULL,
    source_file         VARCHAR NOT NULL,
    line_item_id        VARCHAR,
    line_item_type      VARCHAR NOT NULL,
    service             VARCHAR,
    usage_type          VARCHAR,
    resource_id         VARCHAR,
    accountant_id       VARCHAR,
    currency            VARCHAR NOT NULL,
    unblended_cost      DECIMAL(38, 10) NOT NULL,
    amortized_cost      DECIMAL(38, 10) NOT NULL,
    net_amortized_cost  DECIMAL(38, 10),
    reason              VARCHAR NOT NULL        -- negative Usage line | beyond the bound
);
