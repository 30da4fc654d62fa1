-- The warehouse tables: the interface contract of ../shared/DESIGN.md ("Warehouse tables").
-- Every asset writes the table of its own name, one billing period at a time (delete-then-insert in one
-- transaction). Money is DECIMAL(38, 10): exact, ten fractional digits, no floats anywhere on the money path.

-- The resource types of DESIGN.md by CUR product code (`service_resource_types`; every other service is 'other'),
-- the driver rules and scopes are views generated from billing_pipeline/catalog.json (catalog.py), added to this DDL
-- by resources/warehouse.py.

CREATE TABLE IF NOT EXISTS cur_line_items (
    billing_period      DATE NOT NULL,          -- first day of the billing month (UTC)
    usage_start         TIMESTAMP NOT NULL,     -- UTC
    usage_end           TIMESTAMP NOT NULL,     -- UTC
    payer_account_id    VARCHAR,
    usage_account_id    VARCHAR,
    line_item_id        VARCHAR,                -- identity/LineItemId where the delivery has it
    line_item_type      VARCHAR NOT NULL,       -- Usage, DiscountedUsage, RIFee, Tax, Credit, ...
    service             VARCHAR,                -- the catalog service the line is read as (else lineItem/ProductCode)
    usage_type          VARCHAR,
    operation           VARCHAR,
    resource_id         VARCHAR,
    description         VARCHAR,
    usage_amount        DECIMAL(38, 10),
    currency            VARCHAR NOT NULL,
    unblended_cost      DECIMAL(38, 10) NOT NULL,
    amortized_cost      DECIMAL(38, 10) NOT NULL,
    net_amortized_cost  DECIMAL(38, 10),        -- NULL where the delivery has no net_* columns
    invoice_id          VARCHAR,                -- NULL until the month is final
    tags                MAP(VARCHAR, VARCHAR),  -- user tags, AWS's Parquet key rule, no user:/user_ prefix
    accountant_id       VARCHAR,
    application         VARCHAR,
    environment         VARCHAR,
    cost_center         VARCHAR,
    source_file         VARCHAR NOT NULL,       -- the delivery file the row was read from
    delivery_id         VARCHAR NOT NULL,       -- assemblyId, or a fingerprint of the files read
    -- discount/TotalDiscount as stated on the line, in no cost (last: warehouse_upgrades.sql adds it to older ones)
    column_discount     DECIMAL(38, 10),
    product_code        VARCHAR                 -- lineItem/ProductCode as AWS wrote it (added after column_discount)
);

CREATE TABLE IF NOT EXISTS hourly_cost_facts (
    billing_period      DATE NOT NULL,
    usage_hour          TIMESTAMP NOT NULL,     -- usage_start truncated to the hour (UTC)
    span_hours          INTEGER NOT NULL,       -- how many hours the line items cover (1 for hourly lines)
    usage_account_id    VARCHAR,
    line_item_type      VARCHAR NOT NULL,
    service             VARCHAR,
    usage_type          VARCHAR,
    operation           VARCHAR,
    resource_id         VARCHAR,
    accountant_id       VARCHAR,
    application         VARCHAR,
    environment         VARCHAR,
    cost_center         VARCHAR,
    currency            VARCHAR NOT NULL,
    in_scope            BOOLEAN NOT NULL,       -- the application's cost (tag application = BILLING_APPLICATION)
    usage_amount        DECIMAL(38, 10),
    unblended_cost      DECIMAL(38, 10) NOT NULL,
    amortized_cost      DECIMAL(38, 10) NOT NULL,
    net_amortized_cost  DECIMAL(38, 10),
    line_items          BIGINT NOT NULL,        -- how many cur_line_items rows the fact sums
    delivery_id         VARCHAR,                -- the cur_line_items delivery the month was computed from
    product_code        VARCHAR                 -- lineItem/ProductCode of its line items (service: as read)
);

CREATE TABLE IF NOT EXISTS usage_shares (
    billing_period      DATE NOT NULL,
    usage_hour          TIMESTAMP NOT NULL,
    service             VARCHAR NOT NULL,       -- CUR product code the usage pays for (AWSLambda, ...)
    driver              VARCHAR NOT NULL,       -- gb_seconds, requests, read_units, write_units, gb_months, ...
    scope               VARCHAR NOT NULL,       -- table / bucket / model the usage was on, '' when not known
    accountant_id       VARCHAR NOT NULL,       -- 'unattributed' for usage with no known owner
    quantity            DECIMAL(38, 10) NOT NULL,
    total_quantity      DECIMAL(38, 10) NOT NULL, -- all tenants' quantity of that hour x service x driver x scope
    share               DOUBLE NOT NULL         -- quantity / total_quantity, for reading; allocation uses quantities
);

CREATE TABLE IF NOT EXISTS tenant_costs (
    billing_period      DATE NOT NULL,
    usage_date          DATE NOT NULL,
    accountant_id       VARCHAR NOT NULL,       -- 'unattributed' for application cost with no owner
    service             VARCHAR,
    resource_type       VARCHAR NOT NULL,       -- lambda, dynamodb, s3, agentcore, bedrock, other
    usage_type          VARCHAR,
    line_item_type      VARCHAR NOT NULL,
    allocation          VARCHAR NOT NULL,       -- direct, shared_hour, shared_day, shared_month, unattributed
    driver              VARCHAR,                -- the usage driver that split a shared cost
    driver_quantity     DECIMAL(38, 10),        -- the tenant's quantity of that driver behind the cost
    currency            VARCHAR NOT NULL,
    cost_metric         VARCHAR NOT NULL,       -- unblended | amortized | net_amortized
    cost                DECIMAL(38, 10) NOT NULL,
    delivery_id         VARCHAR                 -- the cur_line_items delivery the month was computed from
);

CREATE TABLE IF NOT EXISTS estimated_usage (
    billing_period      DATE NOT NULL,
    accountant_id       VARCHAR NOT NULL,
    resource_type       VARCHAR NOT NULL,
    operation           VARCHAR,
    usage_date          DATE NOT NULL,
    quantity            DECIMAL(38, 10),
    estimated_cost      DECIMAL(38, 10) NOT NULL,
    records             BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS reconciliation_report (
    billing_period      DATE NOT NULL,
    accountant_id       VARCHAR NOT NULL,
    resource_type       VARCHAR NOT NULL,       -- one of the resource types, or 'total' for the tenant-month
    currency            VARCHAR NOT NULL,
    estimated_cost      DECIMAL(38, 10) NOT NULL,
    actual_cost         DECIMAL(38, 10) NOT NULL,
    variance            DECIMAL(38, 10) NOT NULL, -- actual - estimated
    variance_pct        DECIMAL(38, 4),           -- variance / actual x 100 (the seed's); 0 when actual is not positive
    flagged             BOOLEAN NOT NULL,         -- |variance_pct| > threshold, cost nobody estimated, or an
                                                  -- estimate that found no cost; estimates only vs their currency
    is_final            BOOLEAN NOT NULL,         -- the month's CUR carries an invoice id
    -- coverage-aligned (docs/realtime.md): the estimates of the whole days the CUR covers against their actuals
    covered_through     TIMESTAMP,                -- end of the last hour the CUR covers (NULL: no CUR yet)
    covered_days_through DATE,                    -- the covered_* columns: usage dates before this
    estimated_covered_cost DECIMAL(38, 10),
    actual_covered_cost DECIMAL(38, 10),
    covered_variance    DECIMAL(38, 10),          -- actual_covered - estimated_covered
    covered_variance_pct DECIMAL(38, 4),          -- covered_variance / actual_covered x 100; 0 when not positive
    estimated_after_coverage DECIMAL(38, 10),     -- estimates of the days from covered_days_through on, apart
    delivery_id         VARCHAR                   -- the cur_line_items delivery the month was computed from
);
