-- cost_allocations: every in-scope hourly cost fact of the month, split over tenants, one row per fact x tenant.
-- The rules are those of docs/attribution-rules.md:
--   direct   the fact carries an accountant_id tag: all of it is that tenant's;
--   shared   an untagged fact of a service with usage drivers: split by each tenant's usage of the driver in the
--            first window (hour, day, month) that has any, on the fact's own table/bucket when it has evidence;
--   unattributed  no driver, or no evidence all month: kept whole under accountant_id 'unattributed'.
-- Shared costs are split in integer units of 1e-10 by largest remainder, so every fact's parts add up to it
-- exactly. Inputs: hourly_cost_facts, usage_shares (the month), driver_prices (service, driver, unit_price).
WITH
driver_rules(service, usage_type_pattern, rule_order, drivers) AS (
    VALUES
        ('AWSLambda',              'GB-Second',               1, ['gb_seconds']),
        ('AWSLambda',              'Request',                 2, ['requests']),
        ('AmazonDynamoDB',         'ReadRequestUnits',        1, ['read_units']),
        ('AmazonDynamoDB',         'ReadCapacityUnit-Hrs',    2, ['read_units']),
        ('AmazonDynamoDB',         'WriteRequestUnits',       3, ['write_units']),
        ('AmazonDynamoDB',         'WriteCapacityUnit-Hrs',   4, ['write_units']),
        ('AmazonS3',               'TimedStorage',            1, ['gb_months']),
        ('AmazonS3',               'Requests-Tier1',          2, ['tier1_requests']),
        ('AmazonS3',               'Requests-Tier2',          3, ['tier2_requests']),
        ('AmazonBedrockAgentCore', 'vCPU',                    1, ['vcpu_hours', 'sessions']),
        ('AmazonBedrockAgentCore', 'GB-Hour',                 2, ['gb_hours', 'sessions']),
        ('AmazonBedrockAgentCore', 'Memory',                  3, ['gb_hours', 'sessions']),
        ('AmazonBedrockAgentCore', 'Gateway',                 4, ['tool_calls']),
        ('AmazonBedrockAgentCore', 'Tool',                    5, ['tool_calls']),
        ('AmazonBedrockAgentCore', '',                        9, ['sessions']),
        ('AmazonBedrock',          'cache-read-input-token',  1, ['cache_read_tokens']),
        ('AmazonBedrock',          'cache-write-input-token', 2, ['cache_write_tokens']),
        ('AmazonBedrock',          'input-token',             3, ['input_tokens']),
        ('AmazonBedrock',          'output-token',            4, ['output_tokens']),
        -- any other usage type of a service with drivers: the service's usage valued at the pricing constants
        ('AWSLambda',              '',                        9, ['combined']),
        ('AmazonDynamoDB',         '',                        9, ['combined']),
        ('AmazonS3',               '',                        9, ['combined']),
        ('AmazonBedrock',          '',                        9, ['combined'])
),
window_levels(level, level_order, max_span_hours) AS (
    VALUES ('hour', 1, 1), ('day', 2, 24), ('month', 3, 2147483647)
),
facts AS (
    SELECT
        row_number() OVER (ORDER BY usage_hour, service, usage_type, operation, resource_id, line_item_type,
                                    usage_account_id, accountant_id, currency, span_hours) AS fact_id,
        billing_period, usage_hour, span_hours, service, usage_type, line_item_type, currency,
        nullif(accountant_id, '') AS accountant_id,
        CASE $cost_metric WHEN 'unblended' THEN unblended_cost
                          WHEN 'amortized' THEN amortized_cost
                          ELSE net_amortized_cost END                                    AS cost,
        -- the table / bucket the cost is for, matched against the scope of the usage evidence
        CASE service WHEN 'AmazonDynamoDB' THEN regexp_extract(coalesce(resource_id, ''), 'table/([^/]+)', 1)
                     WHEN 'AmazonS3'       THEN coalesce(resource_id, '')
                     ELSE '' END                                                        AS fact_scope
    FROM hourly_cost_facts
    WHERE billing_period = $billing_period AND in_scope
),
-- Usage as integer weights: driver quantities in units of 1e-10; 'combined' values each driver at its unit
-- price (units of 1e-20). Every scope also counts towards the service-wide scope '*'.
evidence AS (
    SELECT usage_hour, service, driver AS driver_key, scope, accountant_id,
           CAST(quantity * 10000000000 AS HUGEINT)                                      AS weight
    FROM usage_shares
    WHERE billing_period = $billing_period
    UNION ALL
    SELECT s.usage_hour, s.service, 'combined', s.scope, s.accountant_id,
           CAST(s.quantity * 10000000000 AS HUGEINT) * CAST(p.unit_price * 10000000000 AS HUGEINT)
    FROM usage_shares s JOIN driver_prices p ON p.service = s.service AND p.driver = s.driver
    WHERE s.billing_period = $billing_period
),
weights AS (
    SELECT l.level,
           CASE l.level WHEN 'hour' THEN e.usage_hour
                        WHEN 'day'  THEN date_trunc('day', e.usage_hour)
                        ELSE CAST($billing_period AS TIMESTAMP) END                     AS bucket,
           e.service, e.driver_key, s.scope, e.accountant_id,
           sum(e.weight)                                                                AS weight
    FROM evidence e
    CROSS JOIN window_levels l
    CROSS JOIN LATERAL (VALUES (e.scope), ('*')) AS s(scope)
    GROUP BY ALL
    HAVING sum(e.weight) > 0
),
window_totals AS (
    SELECT level, bucket, service, driver_key, scope, sum(weight) AS total_weight
    FROM weights GROUP BY ALL
),
month_drivers AS (
    SELECT DISTINCT service, driver_key, scope FROM window_totals WHERE level = 'month'
),
shared_facts AS (
    SELECT * FROM facts WHERE accountant_id IS NULL AND cost <> 0
),
-- the first rule that matches the usage type, then the first of its drivers with evidence this month
first_rule AS (
    SELECT f.fact_id, min_by(r.drivers, r.rule_order) AS drivers
    FROM shared_facts f
    JOIN driver_rules r ON r.service = f.service AND contains(coalesce(f.usage_type, ''), r.usage_type_pattern)
    GROUP BY f.fact_id
),
fact_driver AS (
    SELECT fr.fact_id, min_by(d.driver_key, d.position) AS driver_key
    FROM first_rule fr
    JOIN shared_facts f USING (fact_id)
    CROSS JOIN LATERAL (SELECT unnest(fr.drivers) AS driver_key, generate_subscripts(fr.drivers, 1) AS position) d
    JOIN (SELECT DISTINCT service, driver_key FROM month_drivers) m
      ON m.service = f.service AND m.driver_key = d.driver_key
    GROUP BY fr.fact_id
),
fact_scope AS (
    SELECT f.fact_id, f.service, f.usage_hour, f.span_hours, fd.driver_key,
           CASE WHEN m.scope IS NOT NULL THEN f.fact_scope ELSE '*' END                AS scope
    FROM shared_facts f
    JOIN fact_driver fd USING (fact_id)
    LEFT JOIN month_drivers m
      ON m.service = f.service AND m.driver_key = fd.driver_key AND m.scope = f.fact_scope AND f.fact_scope <> ''
),
fact_window AS (
    SELECT fs.fact_id, fs.service, fs.driver_key, fs.scope,
           min_by(l.level, l.level_order)                                               AS level,
           min_by(t.bucket, l.level_order)                                              AS bucket,
           min_by(t.total_weight, l.level_order)                                        AS total_weight
    FROM fact_scope fs
    JOIN window_levels l ON fs.span_hours <= l.max_span_hours
    JOIN window_totals t
      ON t.level = l.level AND t.service = fs.service AND t.driver_key = fs.driver_key AND t.scope = fs.scope
     AND t.bucket = CASE l.level WHEN 'hour' THEN fs.usage_hour
                                 WHEN 'day'  THEN date_trunc('day', fs.usage_hour)
                                 ELSE CAST($billing_period AS TIMESTAMP) END
    GROUP BY ALL
),
split_inputs AS (
    SELECT fw.fact_id, fw.level, fw.driver_key, w.accountant_id, w.weight, fw.total_weight,
           CAST(f.cost * 10000000000 AS HUGEINT)                                        AS cost_units,
           -- |cost| x weight must fit in a HUGEINT; beyond 1e37 the weights lose their last digits (never
           -- near real bills, but an overflow must not fail a month)
           CAST(greatest(0, ceil(log10(abs(CAST(f.cost AS DOUBLE)) * 1e10 + 1)
                                 + log10(CAST(fw.total_weight AS DOUBLE) + 1) - 37)) AS INTEGER) AS shift
    FROM fact_window fw
    JOIN shared_facts f USING (fact_id)
    JOIN weights w
      ON w.level = fw.level AND w.bucket = fw.bucket AND w.service = fw.service
     AND w.driver_key = fw.driver_key AND w.scope = fw.scope
),
scaled AS (
    SELECT *, weight // CAST(10 ** shift AS HUGEINT)                                    AS scaled_weight
    FROM split_inputs
),
floored AS (
    SELECT *,
           (abs(cost_units) * scaled_weight) // sum(scaled_weight) OVER (PARTITION BY fact_id) AS base_units,
           (abs(cost_units) * scaled_weight) %  sum(scaled_weight) OVER (PARTITION BY fact_id) AS remainder
    FROM scaled
    WHERE scaled_weight > 0
),
largest_remainder AS (
    SELECT *,
           abs(cost_units) - sum(base_units) OVER (PARTITION BY fact_id)                AS units_left,
           row_number() OVER (PARTITION BY fact_id ORDER BY remainder DESC, accountant_id) AS remainder_rank
    FROM floored
),
shared AS (
    SELECT fact_id, accountant_id, 'shared_' || level AS allocation, driver_key AS driver,
           CAST(CASE WHEN driver_key = 'combined'
                     THEN CAST(weight AS DECIMAL(38, 0)) * CAST('0.00000000000000000001' AS DECIMAL(21, 20))
                     ELSE CAST(weight AS DECIMAL(38, 0)) * CAST('0.0000000001' AS DECIMAL(11, 10)) END
                AS DECIMAL(38, 10))                                                      AS driver_quantity,
           CAST(sign(cost_units) * (base_units + CASE WHEN remainder_rank <= units_left THEN 1 ELSE 0 END)
                AS DECIMAL(38, 0)) * CAST('0.0000000001' AS DECIMAL(11, 10))            AS cost
    FROM largest_remainder
),
direct AS (
    SELECT fact_id, accountant_id, 'direct' AS allocation, NULL AS driver,
           CAST(NULL AS DECIMAL(38, 10)) AS driver_quantity, cost
    FROM facts WHERE accountant_id IS NOT NULL AND cost <> 0
),
unattributed AS (
    SELECT f.fact_id, 'unattributed' AS accountant_id, 'unattributed' AS allocation,
           fd.driver_key AS driver, CAST(NULL AS DECIMAL(38, 10)) AS driver_quantity, f.cost
    FROM shared_facts f
    LEFT JOIN fact_driver fd USING (fact_id)
    WHERE f.fact_id NOT IN (SELECT fact_id FROM fact_window)
),
allocated AS (
    SELECT * FROM direct UNION ALL SELECT * FROM shared UNION ALL SELECT * FROM unattributed
)
SELECT
    fact_id, f.billing_period, f.usage_hour, f.span_hours, f.service, f.usage_type, f.line_item_type, f.currency,
    f.cost AS fact_cost, a.accountant_id, a.allocation, a.driver, a.driver_quantity,
    CAST(a.cost AS DECIMAL(38, 10)) AS cost
FROM allocated a
JOIN facts f USING (fact_id)
