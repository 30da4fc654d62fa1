-- cost_allocations: every in-scope hourly cost fact of the month, split over tenants, one row per fact x tenant.
-- The rules are those of docs/attribution-rules.md:
--   direct   the fact carries an accountant_id tag: all of it is that tenant's;
--   shared   an untagged fact of a service with usage drivers: split by each tenant's usage of the driver in the
--            first window (hour, day, month) that has any, on the fact's own table/bucket when it has evidence;
--   unattributed  no driver, or no evidence all month: kept whole under accountant_id 'unattributed'.
-- Shared costs are split in integer units of 1e-10 by largest remainder, so every fact's parts add up to it
-- exactly. Inputs: hourly_cost_facts, usage_shares (the month), driver_prices (service, driver, unit_price).
WITH
-- (service, usage type pattern) -> drivers in order of preference; the first matching rule wins
driver_rules(service, usage_type_pattern, rule_order, driver, driver_order) AS (
    VALUES
        ('AWSLambda',              'GB-Second',               1, 'gb_seconds',         1),
        ('AWSLambda',              'Request',                 2, 'requests',           1),
        ('AmazonDynamoDB',         'ReadRequestUnits',        1, 'read_units',         1),
        ('AmazonDynamoDB',         'ReadCapacityUnit-Hrs',    2, 'read_units',         1),
        ('AmazonDynamoDB',         'WriteRequestUnits',       3, 'write_units',        1),
        ('AmazonDynamoDB',         'WriteCapacityUnit-Hrs',   4, 'write_units',        1),
        ('AmazonS3',               'TimedStorage',            1, 'gb_months',          1),
        ('AmazonS3',               'Requests-Tier1',          2, 'tier1_requests',     1),
        ('AmazonS3',               'Requests-Tier2',          3, 'tier2_requests',     1),
        ('AmazonBedrockAgentCore', 'vCPU',                    1, 'vcpu_hours',         1),
        ('AmazonBedrockAgentCore', 'vCPU',                    1, 'sessions',           2),
        ('AmazonBedrockAgentCore', 'GB-Hour',                 2, 'gb_hours',           1),
        ('AmazonBedrockAgentCore', 'GB-Hour',                 2, 'sessions',           2),
        ('AmazonBedrockAgentCore', 'Memory',                  3, 'gb_hours',           1),
        ('AmazonBedrockAgentCore', 'Memory',                  3, 'sessions',           2),
        ('AmazonBedrockAgentCore', 'Gateway',                 4, 'tool_calls',         1),
        ('AmazonBedrockAgentCore', 'Tool',                    5, 'tool_calls',         1),
        ('AmazonBedrockAgentCore', '',                        9, 'sessions',           1),
        ('AmazonBedrock',          'cache-read-input-token',  1, 'cache_read_tokens',  1),
        ('AmazonBedrock',          'cache-write-input-token', 2, 'cache_write_tokens', 1),
        ('AmazonBedrock',          'input-token',             3, 'input_tokens',       1),
        ('AmazonBedrock',          'output-token',            4, 'output_tokens',      1),
        -- any other usage type of a service with drivers: the service's usage valued at the pricing constants
        ('AWSLambda',              '',                        9, 'combined',           1),
        ('AmazonDynamoDB',         '',                        9, 'combined',           1),
        ('AmazonS3',               '',                        9, 'combined',           1),
        ('AmazonBedrock',          '',                        9, 'combined',           1)
),
window_levels(level, level_order, max_span_hours) AS (
    VALUES ('hour', 1, 1), ('day', 2, 24), ('month', 3, 2147483647)
),
facts AS (
    SELECT
        billing_period, usage_hour, span_hours, service, usage_type, operation, resource_id, line_item_type,
        usage_account_id, currency,
        nullif(accountant_id, '') AS accountant_id,
        CASE $cost_metric WHEN 'unblended' THEN unblended_cost
                          WHEN 'amortized' THEN amortized_cost
                          -- a delivery without net_* columns: the non-net figure (docs/attribution-rules.md)
                          ELSE coalesce(net_amortized_cost, amortized_cost) END          AS cost,
        -- the table / bucket the cost is for, matched against the scope of the usage evidence
        CASE service WHEN 'AmazonDynamoDB' THEN regexp_extract(coalesce(resource_id, ''), 'table/([^/]+)', 1)
                     WHEN 'AmazonS3'       THEN coalesce(resource_id, '')
                     ELSE '' END                                                        AS fact_scope
    FROM hourly_cost_facts
    WHERE billing_period = $billing_period AND in_scope
),
shared_facts AS (
    SELECT
        row_number() OVER (ORDER BY usage_hour, service, usage_type, operation, resource_id, line_item_type,
                                    usage_account_id, currency, span_hours)             AS fact_id,
        *
    FROM facts
    WHERE accountant_id IS NULL AND cost <> 0
),
-- Usage as exact integer weights (DECIMAL(38,0)): driver quantities in units of 1e-10; 'combined' values each
-- driver at its unit price (units of 1e-20). Every scope also counts towards the service-wide scope '*'.
evidence AS (
    SELECT usage_hour, service, driver AS driver_key, scope, accountant_id,
           CAST(quantity * 10000000000 AS DECIMAL(38, 0))                               AS weight
    FROM usage_shares
    WHERE billing_period = $billing_period
    UNION ALL
    SELECT s.usage_hour, s.service, 'combined', s.scope, s.accountant_id,
           CAST(s.quantity * 10000000000 AS DECIMAL(38, 0)) * CAST(p.unit_price * 10000000000 AS DECIMAL(38, 0))
    FROM usage_shares s JOIN driver_prices p ON p.service = s.service AND p.driver = s.driver
    WHERE s.billing_period = $billing_period
),
evidence_in_scopes AS (
    SELECT usage_hour, service, driver_key, scope, accountant_id, weight FROM evidence
    UNION ALL
    SELECT usage_hour, service, driver_key, '*', accountant_id, weight FROM evidence
),
weights AS (
    SELECT l.level,
           CASE l.level WHEN 'hour' THEN e.usage_hour
                        WHEN 'day'  THEN date_trunc('day', e.usage_hour)
                        ELSE CAST($billing_period AS TIMESTAMP) END                     AS bucket,
           e.service, e.driver_key, e.scope, e.accountant_id,
           sum(e.weight)                                                                AS weight
    FROM evidence_in_scopes e
    CROSS JOIN window_levels l
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
matching_rules AS (
    SELECT f.fact_id, r.rule_order, r.driver, r.driver_order
    FROM shared_facts f
    JOIN driver_rules r ON r.service = f.service AND contains(coalesce(f.usage_type, ''), r.usage_type_pattern)
),
first_rule AS (
    SELECT fact_id, min(rule_order) AS rule_order FROM matching_rules GROUP BY fact_id
),
-- of the first matching rule's drivers, the first with evidence this month
fact_driver AS (
    SELECT m.fact_id, min_by(m.driver, m.driver_order) AS driver_key
    FROM matching_rules m
    JOIN first_rule fr ON fr.fact_id = m.fact_id AND fr.rule_order = m.rule_order
    JOIN shared_facts f ON f.fact_id = m.fact_id
    JOIN (SELECT DISTINCT service, driver_key FROM month_drivers) md
      ON md.service = f.service AND md.driver_key = m.driver
    GROUP BY m.fact_id
),
fact_scope AS (
    SELECT f.fact_id, f.service, f.usage_hour, f.span_hours, fd.driver_key,
           CASE WHEN md.scope IS NOT NULL THEN f.fact_scope ELSE '*' END               AS scope
    FROM shared_facts f
    JOIN fact_driver fd ON fd.fact_id = f.fact_id
    LEFT JOIN month_drivers md
      ON md.service = f.service AND md.driver_key = fd.driver_key AND md.scope = f.fact_scope AND f.fact_scope <> ''
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
    GROUP BY fs.fact_id, fs.service, fs.driver_key, fs.scope
),
-- The exact split: tenant t gets floor(|C| w_t / W) units. |C| w_t may exceed DECIMAL(38), so |C| is taken in
-- two limbs, |C| = hi * 1e9 + lo, and every quotient below is small enough (< 2^53) to be exact:
--   floor(|C| w / W) = 1e9 * floor(hi w / W) + floor(((hi w mod W) * 1e9 + lo w) / W)
-- (hi w stays within DECIMAL(38) for any fact under $1e10 split by weights under 1e27 units; beyond that the
-- engine reports an overflow rather than a wrong number.)
split_inputs AS (
    SELECT fw.fact_id, fw.level, fw.driver_key, w.accountant_id, w.weight, fw.total_weight,
           CAST(f.cost * 10000000000 AS DECIMAL(38, 0))                                 AS cost_units,
           CAST(floor(abs(f.cost) * 10) AS DECIMAL(38, 0))                              AS cost_hi,
           CAST(abs(f.cost) * 10000000000 AS DECIMAL(38, 0)) % 1000000000               AS cost_lo
    FROM fact_window fw
    JOIN shared_facts f ON f.fact_id = fw.fact_id
    JOIN weights w
      ON w.level = fw.level AND w.bucket = fw.bucket AND w.service = fw.service
     AND w.driver_key = fw.driver_key AND w.scope = fw.scope
),
high_limb AS (
    SELECT *,
           CAST(round((cost_hi * weight - (cost_hi * weight) % total_weight) / total_weight) AS DECIMAL(38, 0)) AS q_hi,
           (cost_hi * weight) % total_weight                                             AS r_hi
    FROM split_inputs
),
low_limb AS (
    SELECT *, r_hi * 1000000000 + cost_lo * weight                                      AS t_lo
    FROM high_limb
),
floored AS (
    SELECT *,
           q_hi * 1000000000
             + CAST(round((t_lo - t_lo % total_weight) / total_weight) AS DECIMAL(38, 0)) AS base_units,
           t_lo % total_weight                                                          AS remainder
    FROM low_limb
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
                     THEN weight * CAST('0.00000000000000000001' AS DECIMAL(21, 20))
                     ELSE weight * CAST('0.0000000001' AS DECIMAL(11, 10)) END
                AS DECIMAL(38, 10))                                                      AS driver_quantity,
           -- the sign as an integer CASE, not sign(): Spark's sign() is a DOUBLE, exact only below 2^53 units
           CAST(CASE WHEN cost_units < 0 THEN -1 WHEN cost_units > 0 THEN 1 ELSE 0 END * (base_units + CASE WHEN remainder_rank <= units_left THEN 1 ELSE 0 END)
                AS DECIMAL(38, 0)) * CAST('0.0000000001' AS DECIMAL(11, 10))            AS cost
    FROM largest_remainder
),
unattributed AS (
    SELECT f.fact_id, 'unattributed' AS accountant_id, 'unattributed' AS allocation,
           fd.driver_key AS driver, CAST(NULL AS DECIMAL(38, 10)) AS driver_quantity, f.cost
    FROM shared_facts f
    LEFT JOIN fact_driver fd ON fd.fact_id = f.fact_id
    WHERE NOT EXISTS (SELECT 1 FROM fact_window fw WHERE fw.fact_id = f.fact_id)
),
shared_and_unattributed AS (
    SELECT * FROM shared UNION ALL SELECT * FROM unattributed
)
SELECT
    CAST(NULL AS BIGINT) AS fact_id, billing_period, usage_hour, span_hours, service, usage_type, line_item_type,
    currency, cost AS fact_cost, accountant_id,
    -- a tag that is never a tenant (cur_line_items: reserved word, control character) is kept unattributed
    CASE WHEN accountant_id = 'unattributed' THEN 'unattributed' ELSE 'direct' END AS allocation,
    CAST(NULL AS VARCHAR) AS driver,
    CAST(NULL AS DECIMAL(38, 10)) AS driver_quantity, CAST(cost AS DECIMAL(38, 10)) AS cost
FROM facts
WHERE accountant_id IS NOT NULL AND cost <> 0
UNION ALL
SELECT
    a.fact_id, f.billing_period, f.usage_hour, f.span_hours, f.service, f.usage_type, f.line_item_type,
    f.currency, f.cost AS fact_cost, a.accountant_id, a.allocation, a.driver, a.driver_quantity,
    CAST(a.cost AS DECIMAL(38, 10)) AS cost
FROM shared_and_unattributed a
JOIN shared_facts f ON f.fact_id = a.fact_id
