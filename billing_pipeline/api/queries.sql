-- The billing API's queries over the published snapshots it holds in memory (api/published.py loads them).
-- Every query is parameterized ($month, $accountant_id): no value is ever formatted into SQL text. Each block
-- starts with a "-- name: <query>" line; queries.py loads them by name. Nothing here computes money: amounts and
-- their cents are the published ones (billing_pipeline/assets/published_billing.py).

-- name: schema
-- One row per published month: which snapshot is served, when it was published, from which CUR delivery.
CREATE TABLE published (
    billing_period DATE PRIMARY KEY, snapshot VARCHAR NOT NULL, published_at VARCHAR NOT NULL,
    delivery_id VARCHAR, is_final BOOLEAN NOT NULL, generation BIGINT NOT NULL
);
CREATE TABLE statements (
    billing_period DATE, accountant_id VARCHAR, line VARCHAR, currency VARCHAR, cost_metric VARCHAR,
    cost DECIMAL(38, 10), amount DECIMAL(38, 2), is_final BOOLEAN
);
CREATE TABLE reconciliation_report (
    billing_period DATE, accountant_id VARCHAR, resource_type VARCHAR, currency VARCHAR,
    estimated_cost DECIMAL(38, 10), actual_cost DECIMAL(38, 10), variance DECIMAL(38, 10),
    variance_pct DECIMAL(38, 4), flagged BOOLEAN, variance_amount DECIMAL(38, 2)
);
CREATE TABLE estimated_lines (
    billing_period DATE, accountant_id VARCHAR, line VARCHAR, estimated_cost DECIMAL(38, 10), amount DECIMAL(38, 2)
);
CREATE TABLE estimates (
    billing_period DATE, accountant_id VARCHAR, resource_type VARCHAR, operation VARCHAR,
    quantity DECIMAL(38, 10), estimated_cost DECIMAL(38, 10), records BIGINT
);
CREATE TABLE drivers (
    billing_period DATE, accountant_id VARCHAR, resource_type VARCHAR, driver VARCHAR,
    quantity DECIMAL(38, 10), cost DECIMAL(38, 10)
);
CREATE TABLE usage_lines (
    billing_period DATE, accountant_id VARCHAR, resource_type VARCHAR, service VARCHAR, usage_type VARCHAR,
    line_item_type VARCHAR, part VARCHAR, currency VARCHAR, quantity DECIMAL(38, 10), unit VARCHAR,
    unit_cost DECIMAL(38, 18), cost DECIMAL(38, 10), amount DECIMAL(38, 2)
);
CREATE TABLE usage_days (
    billing_period DATE, accountant_id VARCHAR, resource_type VARCHAR, service VARCHAR, usage_type VARCHAR,
    line_item_type VARCHAR, part VARCHAR, usage_date DATE, quantity DECIMAL(38, 10), cost DECIMAL(38, 10),
    amount DECIMAL(38, 2)
);
CREATE TABLE daily (
    billing_period DATE, accountant_id VARCHAR, resource_type VARCHAR, usage_date DATE, cost DECIMAL(38, 10),
    amount DECIMAL(38, 2)
);
CREATE TABLE cost_parts (
    billing_period DATE, accountant_id VARCHAR, part VARCHAR, cost DECIMAL(38, 10), amount DECIMAL(38, 2)
);
CREATE TABLE month_to_date (
    billing_period DATE, accountant_id VARCHAR, currency VARCHAR,
    actual_cost DECIMAL(38, 10), actual_cost_amount DECIMAL(38, 2),
    estimated_cost DECIMAL(38, 10), estimated_cost_amount DECIMAL(38, 2),
    cost_to_date DECIMAL(38, 10), cost_to_date_amount DECIMAL(38, 2),
    forecast_cost DECIMAL(38, 10), forecast_cost_amount DECIMAL(38, 2),
    forecast_low DECIMAL(38, 10), forecast_low_amount DECIMAL(38, 2),
    forecast_high DECIMAL(38, 10), forecast_high_amount DECIMAL(38, 2),
    covered_through TIMESTAMP, as_of TIMESTAMP
);

-- name: published
SELECT billing_period, snapshot, published_at, delivery_id, is_final FROM published ORDER BY billing_period DESC;

-- name: totals
-- The accountant's month totals (statement, estimates, report, month to date) of every published month, newest
-- first. A month listed by its month to date alone is one before the bill's first delivery, estimated from usage.
SELECT p.billing_period, coalesce(s.currency, m.currency), s.cost_metric, s.cost, s.amount, e.estimated_cost,
       e.amount, r.variance, r.variance_amount, r.flagged, m.cost_to_date, m.cost_to_date_amount
FROM published p
LEFT JOIN statements s ON s.billing_period = p.billing_period AND s.accountant_id = $accountant_id AND s.line = 'total'
LEFT JOIN estimated_lines e ON e.billing_period = p.billing_period AND e.accountant_id = $accountant_id
                            AND e.line = 'total'
LEFT JOIN reconciliation_report r ON r.billing_period = p.billing_period AND r.accountant_id = $accountant_id
                                  AND r.resource_type = 'total'
LEFT JOIN month_to_date m ON m.billing_period = p.billing_period AND m.accountant_id = $accountant_id
                          AND NOT p.is_final
WHERE s.accountant_id IS NOT NULL OR e.accountant_id IS NOT NULL OR m.accountant_id IS NOT NULL
ORDER BY p.billing_period DESC, s.currency;

-- name: statement_lines
SELECT line, currency, cost, amount
FROM statements
WHERE billing_period = $month AND accountant_id = $accountant_id AND line <> 'total'
ORDER BY line;

-- name: estimated_lines
SELECT line, estimated_cost, amount
FROM estimated_lines
WHERE billing_period = $month AND accountant_id = $accountant_id AND line <> 'total'
ORDER BY line;

-- name: estimates_by_operation
SELECT resource_type, operation, quantity, estimated_cost, records
FROM estimates
WHERE billing_period = $month AND accountant_id = $accountant_id
ORDER BY resource_type, operation;

-- name: drivers
SELECT resource_type, driver, quantity, cost
FROM drivers
WHERE billing_period = $month AND accountant_id = $accountant_id AND quantity IS NOT NULL
ORDER BY resource_type, driver;

-- name: report
SELECT resource_type, estimated_cost, actual_cost, variance, variance_amount, variance_pct, flagged
FROM reconciliation_report
WHERE billing_period = $month AND accountant_id = $accountant_id
ORDER BY resource_type = 'total', resource_type;

-- name: usage_lines
-- The tenant's usage lines of the month: quantity in units, the bill's unit cost, cost and its published cents.
SELECT resource_type, service, usage_type, line_item_type, part, currency, quantity, unit, unit_cost, cost, amount
FROM usage_lines
WHERE billing_period = $month AND accountant_id = $accountant_id
ORDER BY resource_type, service, usage_type NULLS FIRST, line_item_type, part;

-- name: usage_days
SELECT resource_type, service, usage_type, line_item_type, part, usage_date, quantity, cost, amount
FROM usage_days
WHERE billing_period = $month AND accountant_id = $accountant_id
ORDER BY resource_type, service, usage_type NULLS FIRST, line_item_type, part, usage_date;

-- name: daily
SELECT resource_type, usage_date, cost, amount
FROM daily
WHERE billing_period = $month AND accountant_id = $accountant_id
ORDER BY resource_type, usage_date;

-- name: cost_parts
SELECT part, cost, amount
FROM cost_parts
WHERE billing_period = $month AND accountant_id = $accountant_id
ORDER BY part;

-- name: month_to_date
SELECT currency, actual_cost, actual_cost_amount, estimated_cost, estimated_cost_amount, cost_to_date,
       cost_to_date_amount, forecast_cost, forecast_cost_amount, forecast_low, forecast_low_amount,
       forecast_high, forecast_high_amount, covered_through, as_of
FROM month_to_date
WHERE billing_period = $month AND accountant_id = $accountant_id;

-- name: month_statements
-- The data team: every tenant's lines of the month.
SELECT accountant_id, line, currency, cost_metric, cost, amount
FROM statements
WHERE billing_period = $month
ORDER BY currency, accountant_id, line = 'total', line;
