-- month_to_date: the queries of the nowcast (billing_pipeline/assets/month_to_date.py), one per `-- query:` block.
-- They read three relations the caller defines, so that the live asset and the backtest's replays (a final month
-- cut back to what existed on day 7, 14, ...) run the same SQL:
--   nowcast_facts       in-scope hourly cost facts, every month: billing_period, usage_hour, span_hours, service,
--                       usage_type, resource_id, accountant_id ('' / NULL: untagged), currency, cost (the metric)
--   nowcast_evidence    usage_shares, every month (hour x service x driver x scope x tenant quantities)
--   nowcast_attributed  tenant_costs, every month (the attributed actual cost)
-- and driver_prices (service, driver, unit_price) from the pricing file. Divisions and rounding happen in Python
-- with Decimal (exact); this SQL only sums.

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
-- the fact's table / bucket when the month has evidence for it, else '*' (all of the service's scopes), as in
-- cost_allocations.sql. Lines longer than a day (monthly credits, fees) are left out: they arrive at month end.
WITH driver_map AS (
    SELECT service, usage_type, max(driver) AS driver
    FROM nowcast_attributed
    WHERE billing_period = $billing_period AND allocation <> 'direct' AND driver IS NOT NULL
    GROUP BY service, usage_type
),
evidence AS (
    SELECT usage_hour, service, driver, scope, quantity
    FROM nowcast_evidence WHERE billing_period = $billing_period
    UNION ALL
    SELECT e.usage_hour, e.service, 'combined', e.scope, e.quantity * p.unit_price
    FROM nowcast_evidence e JOIN driver_prices p ON p.service = e.service AND p.driver = e.driver
    WHERE e.billing_period = $billing_period
),
evidence_keys AS (
    SELECT DISTINCT service, driver, scope FROM evidence
),
facts AS (
    SELECT f.usage_hour, f.span_hours, f.service, m.driver, f.currency, f.cost,
           CASE f.service WHEN 'AmazonDynamoDB' THEN regexp_extract(coalesce(f.resource_id, ''), 'table/([^/]+)', 1)
                          WHEN 'AmazonS3'       THEN coalesce(f.resource_id, '')
                          ELSE '' END                                          AS fact_scope
    FROM nowcast_facts f
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
      ON e.service = c.service AND e.driver = c.driver AND (c.scope = '*' OR e.scope = c.scope)
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

-- query: run_rate_sums
-- Tagged (direct) resources, and untagged cost no driver explains (kept as 'unattributed'): their cost in the
-- window, per tenant x service x usage type; the run rate is that cost over the window's hours.
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
    FROM nowcast_facts f
    LEFT JOIN driver_map m ON m.service = f.service AND m.usage_type IS NOT DISTINCT FROM f.usage_type
    WHERE f.billing_period = $billing_period AND f.span_hours <= 24
      AND (coalesce(f.accountant_id, '') <> '' OR m.driver IS NULL)
)
SELECT accountant_id, service, usage_type, currency, grain, sum(cost) AS cost
FROM facts
WHERE (grain = 'hour' AND usage_hour >= $hour_window_start AND usage_hour < $hour_window_end)
   OR (grain = 'day' AND usage_hour >= $day_window_start AND usage_hour < $day_window_end)
GROUP BY ALL
HAVING sum(cost) <> 0
ORDER BY ALL;

-- query: evidence_after_coverage
-- Each tenant's usage of a calibrated driver and scope after coverage (hourly lines: covered_through; daily lines:
-- the end of the last covered day) through as_of, per day.
SELECT e.accountant_id, k.service, k.driver, k.scope, k.currency, k.grain,
       CAST(e.usage_hour AS DATE)                                               AS usage_date,
       sum(e.quantity)                                                          AS quantity
FROM (
    SELECT usage_hour, service, driver, scope, accountant_id, quantity
    FROM nowcast_evidence WHERE billing_period = $billing_period
    UNION ALL
    SELECT e.usage_hour, e.service, 'combined', e.scope, e.accountant_id, e.quantity * p.unit_price
    FROM nowcast_evidence e JOIN driver_prices p ON p.service = e.service AND p.driver = e.driver
    WHERE e.billing_period = $billing_period
) e
JOIN nowcast_unit_costs k
  ON e.service = k.service AND e.driver = k.driver AND (k.scope = '*' OR e.scope = k.scope)
WHERE e.usage_hour >= CASE k.grain WHEN 'hour' THEN $covered_through ELSE $days_covered_through END
  AND e.usage_hour < $as_of
GROUP BY ALL
ORDER BY ALL;

-- query: evidence_drivers
SELECT DISTINCT service, driver FROM nowcast_evidence WHERE billing_period = $billing_period
  AND usage_hour >= $covered_through AND usage_hour < $as_of;

-- query: actual_by_day
-- stock: storage (GB-months, billed a day at a time for what is stored), projected at its last day's cost
SELECT accountant_id, service, currency, usage_date, sum(cost) AS cost,
       coalesce(sum(cost) FILTER (WHERE contains(coalesce(usage_type, ''), 'TimedStorage')), 0) AS stock
FROM nowcast_attributed
WHERE billing_period = $billing_period
GROUP BY ALL
ORDER BY ALL;
