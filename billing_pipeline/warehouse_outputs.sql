-- The outputs' tables (GitHub issue 6): pricing feedback, chargeback statements, the usage-table write-back log
-- and Cost Explorer's view of the month. Same rules as warehouse.sql: one table per asset of the same name, a month
-- replaced in one transaction, money exact in DECIMAL.

CREATE TABLE IF NOT EXISTS pricing_feedback (
    billing_period        DATE NOT NULL,
    service               VARCHAR NOT NULL,         -- CUR product code (AWSLambda, ...)
    resource_type         VARCHAR NOT NULL,         -- lambda, dynamodb, s3, agentcore, bedrock, other
    driver                VARCHAR NOT NULL,         -- gb_seconds, requests, ..., 'combined' (no single driver)
    currency              VARCHAR NOT NULL,
    accountant_id         VARCHAR NOT NULL,         -- 'total': the driver; else a tenant (or 'unattributed')
    quantity              DECIMAL(38, 10),          -- the month's measured usage of the driver (usage_shares)
    actual_cost           DECIMAL(38, 10) NOT NULL, -- the in-scope cost split by that driver (tenant_costs)
    bill_quantity         DECIMAL(38, 10),          -- 'total': the CUR's usage amount of the driver's usage types
    recorded_quantity     DECIMAL(38, 10),          -- a tenant's: the usage the application recorded (estimates)
    implied_unit_cost     DECIMAL(38, 18),          -- the bill's cost / bill_quantity, rounded half up to 1e-18
    configured_unit_cost  DECIMAL(38, 18),          -- the pricing file's constant; NULL when it has none
    variance_pct          DECIMAL(38, 4),           -- (implied - configured) / configured x 100
    flagged               BOOLEAN NOT NULL,         -- 'total': |variance_pct| > threshold, or a driver without constant
    suggested_unit_cost   DECIMAL(38, 12),          -- the implied unit cost, rounded to 1e-12, where flagged
    price_variance        DECIMAL(38, 10),          -- a tenant's: evidence x (implied - configured)
    quantity_variance     DECIMAL(38, 10),          -- a tenant's: (evidence - recorded) x configured
    is_final              BOOLEAN NOT NULL
);

CREATE TABLE IF NOT EXISTS statements (
    billing_period        DATE NOT NULL,
    accountant_id         VARCHAR NOT NULL,         -- 'unattributed': application cost nobody's usage explains
    line                  VARCHAR NOT NULL,         -- a resource type, or 'total' for the tenant-month
    currency              VARCHAR NOT NULL,
    cost_metric           VARCHAR NOT NULL,
    direct_cost           DECIMAL(38, 10) NOT NULL, -- resources tagged with the tenant
    shared_cost           DECIMAL(38, 10) NOT NULL, -- its share of shared resources (and unattributed cost)
    cost                  DECIMAL(38, 10) NOT NULL, -- exact: direct + shared
    amount                DECIMAL(38, 2) NOT NULL,  -- cents by largest remainder (see docs/outputs.md)
    is_final              BOOLEAN NOT NULL,
    delivery_id           VARCHAR                   -- the cur_line_items delivery the month was computed from
);

CREATE TABLE IF NOT EXISTS usage_table_writeback (
    billing_period        DATE NOT NULL,
    table_name            VARCHAR NOT NULL,         -- the DynamoDB table written
    accountant_id         VARCHAR NOT NULL,         -- partition key of the item
    "timestamp"           VARCHAR NOT NULL,         -- sort key: YYYY-MM-DDT00:00:00Z#cur#<service>
                                                    -- (a day outside the month: <month>-01T00:00:00Z#cur#<day>#<service>)
    usage_date            DATE NOT NULL,
    service               VARCHAR NOT NULL,
    resource_type         VARCHAR NOT NULL,
    currency              VARCHAR NOT NULL,
    cost_metric           VARCHAR NOT NULL,
    amount                DECIMAL(38, 10) NOT NULL  -- exact attributed actual cost of the day
);

CREATE TABLE IF NOT EXISTS cost_explorer_costs (
    billing_period        DATE NOT NULL,
    usage_date            DATE NOT NULL,            -- Cost Explorer's DAILY TimePeriod.Start
    accountant_id         VARCHAR NOT NULL,         -- the tag value; '' for cost without the tag
    metric                VARCHAR NOT NULL,         -- UnblendedCost | AmortizedCost | NetAmortizedCost
    amount                DECIMAL(38, 10) NOT NULL, -- as Cost Explorer returned it (a rounded decimal string)
    currency              VARCHAR NOT NULL,         -- the metric's Unit
    estimated             BOOLEAN NOT NULL          -- Cost Explorer's Estimated flag of the day
);
