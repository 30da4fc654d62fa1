-- cost_allocations: every in-scope hourly cost fact of the month, split over tenants, one row per fact x tenant.
-- The rules are those of docs/attribution-rules.md:
--   direct   the fact carries an accountant_id tag: all of it is that tenant's;
--   shared   an untagged fact of a service with usage drivers: split by each tenant's usage of the driver in the
--            first window (hour, day, month) that has any, on the fact's own table/bucket when it has evidence;
--   unattributed  no driver, or no evidence all month: kept whole under accountant_id 'unattributed'.
-- Shared costs are split in integer units of 1e-10 by largest remainder, so every fact's parts add up to it
-- exactly. Inputs: hourly_cost_facts, usage_shares (the month), driver_prices (service, driver, unit_price), and
-- the catalog's views (catalog.json): driver_rules (service, usage type pattern -> drivers in order of preference;
-- the first matching rule wins), fact_scopes (how a fact's function / table / bucket comes from its resource id)
-- and scope_names (a scope the usage type names, e.g. a Bedrock model, and the evidence's own name for it).
-- Two passes ($pass): 'compute' allocates every fact but the untagged NAT gateway / data transfer ones (catalog
-- network_usage_types); 'network' allocates those by the tenants' compute cost the first pass gave them
-- (compute_costs: usage_hour, currency, accountant_id, cost; $network_policy 'unattributed' leaves them
-- unattributed). Compute cost is money: it is evidence under the scope of its currency, and a network fact is split
-- by the compute cost of its own currency only (never '*', which would weigh a USD line by EUR costs).
WITH
window_levels(level, level_order, max_span_hours) AS (
    VALUES ('hour', 1, 1), ('day', 2, 24), ('month', 3, 2147483647)
),
fact_usage_types AS (
    SELECT DISTINCT service, usage_type FROM hourly_cost_facts WHERE billing_period = $billing_period AND in_scope
),
-- the scope a usage type names (a Bedrock model), first match in catalog order
named_scopes AS (
-- include: named_scopes
),
network_types AS (
    SELECT DISTINCT t.usage_type
    FROM (SELECT DISTINCT usage_type FROM hourly_cost_facts WHERE billing_period = $billing_period AND in_scope) t
    JOIN network_usage_types n ON contains(t.usage_type, n.pattern)
),
fact_keys AS (
    SELECT DISTINCT service, usage_type, resource_id
    FROM hourly_cost_facts WHERE billing_period = $billing_period AND in_scope
),
-- the model / function / table / bucket each cost is for, matched against the scope of the usage evidence
key_scopes AS (
-- include: fact_key_scopes
),
facts AS (
    SELECT
        nt.usage_type IS NOT NULL                                                        AS is_network,
        h.billing_period, h.usage_hour, h.span_hours, h.service, h.product_code, h.usage_type, h.operation,
        h.resource_id, h.line_item_type, h.usage_account_id, h.currency,
        nullif(h.accountant_id, '') AS accountant_id,
        CASE $cost_metric WHEN 'unblended' THEN h.unblended_cost
                          WHEN 'amortized' THEN h.amortized_cost
                          -- a delivery without net_* columns: the non-net figure (docs/attribution-rules.md)
                          ELSE coalesce(h.net_amortized_cost, h.amortized_cost) END      AS cost,
        k.fact_scope
    FROM hourly_cost_facts h
    JOIN key_scopes k ON k.service IS NOT DISTINCT FROM h.service AND k.usage_type IS NOT DISTINCT FROM h.usage_type
                     AND k.resource_id IS NOT DISTINCT FROM h.resource_id
    LEFT JOIN network_types nt ON nt.usage_type = h.usage_type
    WHERE h.billing_period = $billing_period AND h.in_scope
),
shared_facts AS (
    SELECT
        -- the network pass's ids are negative, so the two passes' facts stay distinct
        CASE WHEN $pass = 'network' THEN -1 ELSE 1 END
          * row_number() OVER (ORDER BY usage_hour, service, usage_type, operation, resource_id, line_item_type,
                                        usage_account_id, currency, span_hours)         AS fact_id,
        -- the service whose rules and evidence split the fact: network facts all go by the compute cost
        CASE WHEN is_network THEN '*network' ELSE service END                           AS service_key,
        *
    FROM facts
    WHERE accountant_id IS NULL AND cost <> 0 AND is_network = ($pass = 'network')
),
rules AS (
    SELECT service, usage_type_pattern, rule_order, driver, driver_order FROM driver_rules
    UNION ALL
    SELECT '*network', '', 1, 'compute_cost', 1
),
-- Usage as exact integer weights (DECIMAL(38,0)): driver quantities in units of 1e-10; 'combined' values each
-- driver at its unit price (units of 1e-20). Every scope also counts towards the service-wide scope '*'.
-- The evidence's scope under the name the facts use: a modelId names its catalog model (first match).
evidence_scopes AS (
    SELECT DISTINCT service, scope FROM usage_shares WHERE billing_period = $billing_period
),
evidence_scope_names AS (
-- include: evidence_scope_names
),
usage AS (
    SELECT u.usage_hour, u.service, u.driver, coalesce(n.scope, u.scope) AS scope, u.accountant_id, u.quantity
    FROM usage_shares u
    LEFT JOIN evidence_scope_names n ON n.service = u.service AND n.evidence_scope = u.scope
    WHERE u.billing_period = $billing_period
),
evidence AS (
    SELECT usage_hour, service, driver AS driver_key, scope, accountant_id,
           CAST(quantity * 10000000000 AS DECIMAL(38, 0))                               AS weight
    FROM usage
    UNION ALL
    SELECT s.usage_hour, s.service, 'combined', s.scope, s.accountant_id,
           CAST(s.quantity * 10000000000 AS DECIMAL(38, 0)) * CAST(p.unit_price * 10000000000 AS DECIMAL(38, 0))
    FROM usage s JOIN driver_prices p ON p.service = s.service AND p.driver = s.driver
    UNION ALL
    -- the network pass: each tenant's compute cost, in units of 1e-10, scoped by its currency
    SELECT usage_hour, '*network', 'compute_cost', currency, accountant_id,
           CAST(cost * 10000000000 AS DECIMAL(38, 0))
    FROM compute_costs
    WHERE $network_policy = 'proportional'
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
    JOIN rules r ON r.service = f.service_key AND contains(coalesce(f.usage_type, ''), r.usage_type_pattern)
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
      ON md.service = f.service_key AND md.driver_key = m.driver
    GROUP BY m.fact_id
),
fact_scope AS (
    SELECT f.fact_id, f.service_key AS service, f.usage_hour, f.span_hours, fd.driver_key,
           CASE WHEN f.is_network THEN f.currency
                WHEN md.scope IS NOT NULL THEN f.fact_scope ELSE '*' END               AS scope
    FROM shared_facts f
    JOIN fact_driver fd ON fd.fact_id = f.fact_id
    LEFT JOIN month_drivers md
      ON md.service = f.service_key AND md.driver_key = fd.driver_key AND md.scope = f.fact_scope AND f.fact_scope <> ''
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
-- one split per shared fact, over the tenants' weights of its window (largest_remainder.sql)
split_inputs AS (
    SELECT fw.fact_id AS split_id, fw.level, fw.driver_key, w.accountant_id, w.weight, fw.total_weight,
           f.cost AS amount
    FROM fact_window fw
    JOIN shared_facts f ON f.fact_id = fw.fact_id
    JOIN weights w
      ON w.level = fw.level AND w.bucket = fw.bucket AND w.service = fw.service
     AND w.driver_key = fw.driver_key AND w.scope = fw.scope
),
largest_remainder AS (
-- include: largest_remainder
),
shared AS (
    SELECT split_id AS fact_id, accountant_id, 'shared_' || level AS allocation, driver_key AS driver,
           CAST(CASE WHEN driver_key = 'combined'
                     THEN weight * CAST('0.00000000000000000001' AS DECIMAL(21, 20))
                     ELSE weight * CAST('0.0000000001' AS DECIMAL(11, 10)) END
                AS DECIMAL(38, 10))                                                      AS driver_quantity,
           units * CAST('0.0000000001' AS DECIMAL(11, 10))                              AS cost
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
    CAST(NULL AS BIGINT) AS fact_id, billing_period, usage_hour, span_hours, service, product_code, usage_type,
    line_item_type, currency, cost AS fact_cost, accountant_id,
    -- a tag that is never a tenant (cur_line_items: reserved word, control character) is kept unattributed
    CASE WHEN accountant_id = 'unattributed' THEN 'unattributed' ELSE 'direct' END AS allocation,
    CAST(NULL AS VARCHAR) AS driver,
    CAST(NULL AS DECIMAL(38, 10)) AS driver_quantity, CAST(cost AS DECIMAL(38, 10)) AS cost
FROM facts
WHERE accountant_id IS NOT NULL AND cost <> 0 AND $pass = 'compute'
UNION ALL
SELECT
    a.fact_id, f.billing_period, f.usage_hour, f.span_hours, f.service, f.product_code, f.usage_type,
    f.line_item_type, f.currency, f.cost AS fact_cost, a.accountant_id, a.allocation, a.driver, a.driver_quantity,
    CAST(a.cost AS DECIMAL(38, 10)) AS cost
FROM shared_and_unattributed a
JOIN shared_facts f ON f.fact_id = a.fact_id
