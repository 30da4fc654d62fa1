-- month_to_date: the queries of the nowcast (billing_pipeline/assets/month_to_date.py), one per `-- query:` block.
-- They read three relations the caller defines, so that the live asset and the backtest's replays (a final month
-- cut back to what existed on day 7, 14, ...) run the same SQL:
--   nowcast_facts       in-scope hourly cost facts, every month: billing_period, usage_hour, span_hours, service,
--                       usage_type, resource_id, accountant_id ('' / NULL: untagged), currency, cost (the metric)
--   nowcast_evidence    usage_shares, every month (hour x service x driver x scope x tenant quantities)
--   nowcast_attributed  tenant_costs, every month (the attributed actual cost)
-- and driver_prices (service, driver, unit_price) from the pricing file. The first three blocks are staged from
-- those (nowcast_scoped_facts, nowcast_scoped_evidence, nowcast_direct_scopes; the months through the nowcast's):
-- the scope of a fact and of its evidence as cost_allocations.sql names them from the catalog, so that each model,
-- function, table and bucket is priced at its own unit cost. Divisions and rounding happen in Python with Decimal (exact);
-- this SQL only sums.

-- query: scoped_facts
-- Each fact with its scope: the model its usage type names (catalog scope_names), else the function / table /
-- bucket / log group of its resource id (catalog fact_scopes), else '' (fact_key_scopes.sql, as cost_allocations.sql).
WITH fact_usage_types AS (
    SELECT DISTINCT service, usage_type FROM nowcast_facts WHERE billing_period <= $billing_period
),
named_scopes AS (
-- include: named_scopes
),
fact_keys AS (
    SELECT DISTINCT service, usage_type, resource_id FROM nowcast_facts WHERE billing_period <= $billing_period
),
key_scopes AS (
-- include: fact_key_scopes
)
SELECT f.*, k.fact_scope
FROM nowcast_facts f
JOIN key_scopes k ON k.service IS NOT DISTINCT FROM f.service AND k.usage_type IS NOT DISTINCT FROM f.usage_type
                 AND k.resource_id IS NOT DISTINCT FROM f.resource_id
WHERE f.billing_period <= $billing_period;

-- query: scoped_evidence
-- The evidence under the scope names the facts use (a modelId names its catalog model, first match).
WITH evidence_scopes AS (
    SELECT DISTINCT service, scope FROM nowcast_evidence WHERE billing_period <= $billing_period
),
evidence_scope_names AS (
-- include: evidence_scope_names
)
SELECT e.billing_period, e.usage_hour, e.service, e.driver, coalesce(n.scope, e.scope) AS scope, e.accountant_id,
       e.quantity
FROM nowcast_evidence e
LEFT JOIN evidence_scope_names n ON n.service = e.service AND n.evidence_scope = e.scope
WHERE e.billing_period <= $billing_period;

-- query: direct_scopes
-- Tagged resources with usage evidence of their own (a tenant's own function whose REPORT lines are logged, its own
-- table whose consumed capacity is), one tenant's each: priced by that evidence at their own unit cost, and kept
-- out of the shared drivers' service-wide scope '*' (their usage is not the shared resources').
SELECT f.billing_period, f.service, f.fact_scope AS scope, min(f.accountant_id) AS accountant_id
FROM nowcast_scoped_facts f
JOIN (SELECT DISTINCT billing_period, service, scope FROM nowcast_scoped_evidence) e
  ON e.billing_period = f.billing_period AND e.service = f.service AND e.scope = f.fact_scope
WHERE coalesce(f.accountant_id, '') <> '' AND f.fact_scope <> '' AND f.billing_period <= $billing_period
GROUP BY f.billing_period, f.service, f.fact_scope
HAVING count(DISTINCT f.accountant_id) = 1;

-- query: coverage
-- covered_through: the end of the last hour the month's CUR covers for the application (hourly lines);
-- days_covered_through: the end of the last day a daily line (S3 storage) covers.
SELECT
    max(CASE WHEN span_hours = 1 THEN usage_hour END)                          AS last_hour,
    max(CASE WHEN span_hours > 1 AND span_hours <= 24 THEN date_trunc('day', usage_hour) END) AS last_day
FROM nowcast_facts
WHERE billing_period = $billing_period;

-- query: evidence_end
SELECT max(usage_hour) FROM nowcast_evidence WHERE billing_period = $billing_period;

-- query: unit_cost_sums
-- Per driver and scope: the untagged cost that driver split in the window, and the measured usage of the same
-- hours, over the days of the window that have evidence of it (a day whose logs were lost would make the unit cost
-- too high; an hour's cost and its evidence need not fall in the same hour, e.g. an agent session's runtime
-- after the hour it started): implied unit cost = cost / quantity.
-- The driver of each (service, usage type) is the one the attribution used that month (tenant_costs), the scope
-- the fact's own (model, function, table, bucket) when the month has evidence for it, else '*' (the service's
-- evidence but that of tagged resources with evidence of their own), as in cost_allocations.sql. Lines longer than
-- a day (monthly credits, fees) are left out: they arrive at month end.
WITH driver_map AS (
    SELECT service, usage_type, max(driver) AS driver
    FROM nowcast_attributed
    WHERE billing_period = $billing_period AND allocation <> 'direct' AND driver IS NOT NULL
    GROUP BY service, usage_type
),
scoped AS (
    SELECT e.usage_hour, e.service, e.driver, e.scope, e.quantity, d.scope IS NOT NULL AS is_direct
    FROM nowcast_scoped_evidence e
    LEFT JOIN nowcast_direct_scopes d
      ON d.billing_period = e.billing_period AND d.service = e.service AND d.scope = e.scope
    WHERE e.billing_period = $billing_period
),
evidence AS (
    SELECT usage_hour, service, driver, scope, quantity, is_direct FROM scoped
    UNION ALL
    SELECT e.usage_hour, e.service, 'combined', e.scope, e.quantity * p.unit_price, e.is_direct
    FROM scoped e JOIN driver_prices p ON p.service = e.service AND p.driver = e.driver
),
evidence_keys AS (
    SELECT DISTINCT service, driver, scope FROM evidence
),
facts AS (
    SELECT f.usage_hour, f.span_hours, f.service, m.driver, f.currency, f.cost, f.fact_scope
    FROM nowcast_scoped_facts f
    JOIN driver_map m ON m.service = f.service AND m.usage_type IS NOT DISTINCT FROM f.usage_type
    WHERE f.billing_period = $billing_period AND coalesce(f.accountant_id, '') = '' AND f.span_hours <= 24
),
keyed AS (
    SELECT f.service, f.driver, f.currency, f.cost,
           CASE WHEN k.scope IS NOT NULL AND f.fact_scope <> '' THEN f.fact_scope ELSE '*' END AS scope,
           CASE WHEN f.span_hours = 1 THEN 'hour' ELSE 'day' END               AS grain,
           f.usage_hour,
           date_trunc('day', f.usage_hour)                                     AS bucket
    FROM facts f
    LEFT JOIN evidence_keys k ON k.service = f.service AND k.driver = f.driver AND k.scope = f.fact_scope
),
cost_buckets AS (
    SELECT service, driver, scope, currency, grain, bucket, sum(cost) AS cost
    FROM keyed
    WHERE (grain = 'hour' AND usage_hour >= $hour_window_start AND usage_hour < $hour_window_end)
       OR (grain = 'day' AND usage_hour >= $day_window_start AND usage_hour < $day_window_end)
    GROUP BY ALL
),
usage_buckets AS (
    SELECT c.service, c.driver, c.scope, c.currency, c.grain, c.bucket, sum(e.quantity) AS quantity
    FROM (SELECT DISTINCT service, driver, scope, currency, grain, bucket FROM cost_buckets) c
    JOIN evidence e
      ON e.service = c.service AND e.driver = c.driver
     AND ((c.scope = '*' AND NOT e.is_direct) OR e.scope = c.scope)
     AND date_trunc('day', e.usage_hour) = c.bucket
     AND ((c.grain = 'hour' AND e.usage_hour >= $hour_window_start AND e.usage_hour < $hour_window_end)
       OR (c.grain = 'day' AND e.usage_hour >= $day_window_start AND e.usage_hour < $day_window_end))
    GROUP BY ALL
    HAVING sum(e.quantity) > 0
)
SELECT c.service, c.driver, c.scope, c.currency, c.grain,
       sum(c.cost) AS cost, sum(u.quantity) AS quantity, count(*) AS buckets
FROM cost_buckets c
JOIN usage_buckets u USING (service, driver, scope, currency, grain, bucket)
GROUP BY ALL
ORDER BY ALL;

-- query: direct_unit_cost_sums
-- Tagged resources with evidence of their own (nowcast_direct_scopes): per tenant x service x usage type x scope,
-- their cost in the window and their own measured usage of the driver the catalog names for the usage type (its
-- first matching rule's first driver with evidence in the scope), over the window's days with evidence of it.
WITH facts AS (
    SELECT f.accountant_id, f.service, f.usage_type, f.fact_scope AS scope, f.currency, f.cost, f.usage_hour,
           CASE WHEN f.span_hours = 1 THEN 'hour' ELSE 'day' END               AS grain
    FROM nowcast_scoped_facts f
    JOIN nowcast_direct_scopes d
      ON d.billing_period = f.billing_period AND d.service = f.service AND d.scope = f.fact_scope
     AND d.accountant_id = f.accountant_id
    WHERE f.billing_period = $billing_period AND f.span_hours <= 24
),
evidence AS (
    SELECT usage_hour, service, driver, scope, quantity
    FROM nowcast_scoped_evidence WHERE billing_period = $billing_period
),
matching_rules AS (
    SELECT t.service, t.usage_type, t.scope, r.rule_order, r.driver, r.driver_order
    FROM (SELECT DISTINCT service, usage_type, scope FROM facts) t
    JOIN driver_rules r ON r.service = t.service AND contains(coalesce(t.usage_type, ''), r.usage_type_pattern)
),
first_rule AS (
    SELECT service, usage_type, scope, min(rule_order) AS rule_order FROM matching_rules GROUP BY ALL
),
fact_driver AS (
    SELECT m.service, m.usage_type, m.scope, min_by(m.driver, m.driver_order) AS driver
    FROM matching_rules m
    JOIN first_rule f USING (service, usage_type, scope, rule_order)
    JOIN (SELECT DISTINCT service, driver, scope FROM evidence) k USING (service, driver, scope)
    GROUP BY ALL
),
cost_buckets AS (
    SELECT f.accountant_id, f.service, f.usage_type, d.driver, f.scope, f.currency, f.grain,
           date_trunc('day', f.usage_hour) AS bucket, sum(f.cost) AS cost
    FROM facts f
    JOIN fact_driver d USING (service, usage_type, scope)
    WHERE (f.grain = 'hour' AND f.usage_hour >= $hour_window_start AND f.usage_hour < $hour_window_end)
       OR (f.grain = 'day' AND f.usage_hour >= $day_window_start AND f.usage_hour < $day_window_end)
    GROUP BY ALL
),
usage_buckets AS (
    SELECT c.service, c.driver, c.scope, c.grain, c.bucket, sum(e.quantity) AS quantity
    FROM (SELECT DISTINCT service, driver, scope, grain, bucket FROM cost_buckets) c
    JOIN evidence e
      ON e.service = c.service AND e.driver = c.driver AND e.scope = c.scope
     AND date_trunc('day', e.usage_hour) = c.bucket
     AND ((c.grain = 'hour' AND e.usage_hour >= $hour_window_start AND e.usage_hour < $hour_window_end)
       OR (c.grain = 'day' AND e.usage_hour >= $day_window_start AND e.usage_hour < $day_window_end))
    GROUP BY ALL
    HAVING sum(e.quantity) > 0
)
SELECT c.accountant_id, c.service, c.usage_type, c.driver, c.scope, c.currency, c.grain,
       sum(c.cost) AS cost, sum(u.quantity) AS quantity
FROM cost_buckets c
JOIN usage_buckets u USING (service, driver, scope, grain, bucket)
GROUP BY ALL
ORDER BY ALL;

-- query: run_rate_sums
-- Tagged (direct) resources without evidence of their own (or none in the window: nowcast_direct_unit_costs holds
-- those with), and untagged cost no driver explains (kept as 'unattributed'): their cost in the window, per
-- tenant x service x usage type; the run rate is that cost over the window's hours.
WITH driver_map AS (
    SELECT service, usage_type, max(driver) AS driver
    FROM nowcast_attributed
    WHERE billing_period = $billing_period AND allocation <> 'direct' AND driver IS NOT NULL
    GROUP BY service, usage_type
),
facts AS (
    SELECT CASE WHEN coalesce(f.accountant_id, '') <> '' THEN f.accountant_id ELSE 'unattributed' END AS accountant_id,
           f.service, f.usage_type, f.currency, f.cost,
           CASE WHEN f.span_hours = 1 THEN 'hour' ELSE 'day' END               AS grain,
           f.usage_hour
    FROM nowcast_scoped_facts f
    LEFT JOIN driver_map m ON m.service = f.service AND m.usage_type IS NOT DISTINCT FROM f.usage_type
    LEFT JOIN nowcast_direct_unit_costs d
      ON d.accountant_id = f.accountant_id AND d.service = f.service AND d.usage_type = f.usage_type
     AND d.scope = f.fact_scope
    WHERE f.billing_period = $billing_period AND f.span_hours <= 24
      AND (coalesce(f.accountant_id, '') <> '' OR m.driver IS NULL)
      AND d.scope IS NULL
)
SELECT accountant_id, service, usage_type, currency, grain, sum(cost) AS cost
FROM facts
WHERE (grain = 'hour' AND usage_hour >= $hour_window_start AND usage_hour < $hour_window_end)
   OR (grain = 'day' AND usage_hour >= $day_window_start AND usage_hour < $day_window_end)
GROUP BY ALL
HAVING sum(cost) <> 0
ORDER BY ALL;

-- query: log_evidence_hours
-- The hours of the month through as_of with any usage evidence from the logs (every driver but stored bytes, a
-- stock the S3 Inventory gives a day at a time): an hour with none among hours with some lost its logs.
SELECT DISTINCT e.usage_hour
FROM nowcast_evidence e
LEFT JOIN driver_units u ON u.service = e.service AND u.driver = e.driver
WHERE e.billing_period = $billing_period AND e.usage_hour < $as_of AND coalesce(u.unit, '') <> 'GB-month'
ORDER BY 1;

-- query: evidence_after_coverage
-- Each tenant's usage of a calibrated driver and scope after coverage (hourly lines: covered_through; daily lines:
-- the end of the last covered day) through as_of, per day. nowcast_evidence_hours says which hours of evidence
-- count for which day (usage_date) of each grain: those after coverage for their own day, and for an hour whose
-- logs were lost, the same hour of earlier days, each standing in for 1/divisor of it (nowcast.evidence_gaps).
-- The service-wide scope '*' leaves out the evidence of tagged resources priced by their own
-- (direct_evidence_after_coverage).
WITH direct AS (
    SELECT DISTINCT service, scope FROM nowcast_direct_scopes WHERE billing_period <= $billing_period
),
scoped AS (
    SELECT e.usage_hour, e.service, e.driver, e.scope, e.accountant_id, e.quantity, d.scope IS NOT NULL AS is_direct
    FROM nowcast_scoped_evidence e
    LEFT JOIN direct d ON d.service = e.service AND d.scope = e.scope
    WHERE e.billing_period = $billing_period
)
SELECT e.accountant_id, k.service, k.driver, k.scope, k.currency, k.grain, w.usage_date, w.divisor,
       sum(e.quantity)                                                          AS quantity
FROM (
    SELECT usage_hour, service, driver, scope, accountant_id, quantity, is_direct FROM scoped
    UNION ALL
    SELECT e.usage_hour, e.service, 'combined', e.scope, e.accountant_id, e.quantity * p.unit_price, e.is_direct
    FROM scoped e JOIN driver_prices p ON p.service = e.service AND p.driver = e.driver
) e
JOIN nowcast_unit_costs k
  ON e.service = k.service AND e.driver = k.driver AND ((k.scope = '*' AND NOT e.is_direct) OR e.scope = k.scope)
JOIN nowcast_evidence_hours w ON w.grain = k.grain AND w.usage_hour = e.usage_hour
GROUP BY ALL
ORDER BY ALL;

-- query: direct_evidence_after_coverage
-- A tagged resource's own usage after coverage through as_of, per day (nowcast_evidence_hours, as above), whoever
-- the evidence names: all of its cost is its tag's tenant's.
SELECT k.accountant_id, k.service, k.usage_type, k.driver, k.scope, k.currency, k.grain, w.usage_date, w.divisor,
       sum(e.quantity)                                                          AS quantity
FROM nowcast_scoped_evidence e
JOIN nowcast_direct_unit_costs k ON e.service = k.service AND e.driver = k.driver AND e.scope = k.scope
JOIN nowcast_evidence_hours w ON w.grain = k.grain AND w.usage_hour = e.usage_hour
WHERE e.billing_period = $billing_period
GROUP BY ALL
ORDER BY ALL;

-- query: evidence_drivers
SELECT DISTINCT service, driver FROM nowcast_evidence WHERE billing_period = $billing_period
  AND usage_hour >= $covered_through AND usage_hour < $as_of;

-- query: actual_by_day
-- stock: storage (GB-months, billed a day at a time for what is stored), projected at its last day's cost;
-- tax: the month's tax so far (AWS delivers it with each delivery, dated the whole month), levied on the charges
SELECT accountant_id, service, currency, usage_date, sum(cost) AS cost,
       coalesce(sum(cost) FILTER (WHERE contains(coalesce(usage_type, ''), 'TimedStorage')), 0) AS stock,
       coalesce(sum(cost) FILTER (WHERE line_item_type = 'Tax'), 0)           AS tax
FROM nowcast_attributed
WHERE billing_period = $billing_period
GROUP BY ALL
ORDER BY ALL;
