-- The real-time tables (GitHub issue 17): the month to date between CUR deliveries, the calibrations that priced
-- its estimates, and the backtest of both. Same rules as warehouse.sql: one table per asset of the same name (the
-- calibration is written by month_to_date), a month replaced in one transaction, money exact in DECIMAL.

CREATE TABLE IF NOT EXISTS month_to_date (
    billing_period      DATE NOT NULL,
    accountant_id       VARCHAR NOT NULL,         -- 'unattributed' too: tenants + unattributed = the application
    resource_type       VARCHAR NOT NULL,
    currency            VARCHAR NOT NULL,
    actual_cost         DECIMAL(38, 10) NOT NULL, -- hours the current CUR delivery covers: tenant_costs, exactly
    estimated_cost      DECIMAL(38, 10) NOT NULL, -- after covered_through (daily lines: the last covered day) to as_of
    cost_to_date        DECIMAL(38, 10) NOT NULL, -- actual + estimated
    forecast_cost       DECIMAL(38, 10) NOT NULL, -- month end
    forecast_low        DECIMAL(38, 10) NOT NULL,
    forecast_high       DECIMAL(38, 10) NOT NULL,
    covered_through     TIMESTAMP NOT NULL,       -- end of the last hour the delivery covers (UTC)
    as_of               TIMESTAMP NOT NULL,       -- end of the last hour of usage evidence (UTC)
    method              VARCHAR NOT NULL          -- actual, unit_cost:<basis>, run_rate:<basis>, joined by '+'
);

CREATE TABLE IF NOT EXISTS month_to_date_calibration (
    billing_period      DATE NOT NULL,            -- the month the calibration priced
    as_of               TIMESTAMP NOT NULL,
    kind                VARCHAR NOT NULL,         -- unit_cost (shared driver x scope) | run_rate (tenant x usage type)
    basis               VARCHAR NOT NULL,         -- last_7_covered_days | previous_month | pricing_file
    source_period       DATE,                     -- the month whose covered hours it was read from
    service             VARCHAR NOT NULL,
    driver              VARCHAR,
    scope               VARCHAR,                  -- table / bucket, '*' for all of the service's scopes
    accountant_id       VARCHAR,                  -- run rates: the tenant ('unattributed': cost no driver explains)
    usage_type          VARCHAR,
    currency            VARCHAR NOT NULL,
    grain               VARCHAR NOT NULL,         -- hour | day (daily lines, e.g. S3 storage)
    window_start        TIMESTAMP,
    window_end          TIMESTAMP,
    cost                DECIMAL(38, 10),          -- the cost in the window
    quantity            DECIMAL(38, 10),          -- the driver's usage in the window (run rates: hours)
    unit_cost           DECIMAL(38, 18) NOT NULL  -- cost / quantity, half up to 1e-18
);

CREATE TABLE IF NOT EXISTS nowcast_accuracy (
    billing_period      DATE NOT NULL,            -- the final month replayed
    replay_day          INTEGER NOT NULL,         -- as of the end of this day of the month
    as_of               TIMESTAMP NOT NULL,
    covered_through     TIMESTAMP NOT NULL,       -- where the replayed CUR was cut
    accountant_id       VARCHAR NOT NULL,
    currency            VARCHAR NOT NULL,
    final_cost          DECIMAL(38, 10) NOT NULL, -- the final month's attributed cost
    final_to_date       DECIMAL(38, 10) NOT NULL, -- ... of the days through as_of
    cost_to_date        DECIMAL(38, 10) NOT NULL,
    forecast_cost       DECIMAL(38, 10) NOT NULL,
    forecast_low        DECIMAL(38, 10) NOT NULL,
    forecast_high       DECIMAL(38, 10) NOT NULL,
    cost_to_date_error_pct DECIMAL(38, 4),        -- (cost_to_date - final_to_date) / final_to_date x 100
    forecast_error_pct  DECIMAL(38, 4),           -- (forecast - final) / final x 100
    in_interval         BOOLEAN NOT NULL,         -- forecast_low <= final <= forecast_high
    seed_cost_to_date   DECIMAL(38, 10) NOT NULL, -- the application's constant-price estimates through as_of
    seed_forecast       DECIMAL(38, 10) NOT NULL, -- ... scaled to the month
    seed_cost_to_date_error_pct DECIMAL(38, 4),
    seed_forecast_error_pct DECIMAL(38, 4)
);
