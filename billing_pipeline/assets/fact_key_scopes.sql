-- fact_key_scopes: the scope of each service x usage type x resource: the model its usage type names
-- (named_scopes), else group 1 of the catalog's fact_scopes pattern on the resource id, else ''. Worked out once per
-- key (thousands), not once per fact (millions): the regular expression is most of the cost. cost_allocations.sql
-- and month_to_date.sql include it (sql.py) as the body of a CTE and join it back to their facts on all three
-- columns (IS NOT DISTINCT FROM: usage type and resource id may be NULL).
-- A usage type of a service with scope_names (Bedrock) that a driver rule matches (a model's tokens) but that names
-- no catalog model is the scope '(unnamed model)', as is the evidence of a modelId no entry names
-- (evidence_scope_names.sql): such a model's tokens are split by the users of unnamed models, never by those of the
-- catalog's models (whose CUR name and modelId meet).
-- Input: relations `fact_keys(service, usage_type, resource_id)` and `named_scopes(service, usage_type, scope)`.
SELECT k.service, k.usage_type, k.resource_id,
       coalesce(n.scope, u.scope, regexp_extract(coalesce(k.resource_id, ''), s.resource_id_pattern, 1), '')
           AS fact_scope
FROM fact_keys k
LEFT JOIN fact_scopes s ON s.service = k.service
LEFT JOIN named_scopes n ON n.service = k.service AND n.usage_type = k.usage_type
LEFT JOIN (
    SELECT DISTINCT t.service, t.usage_type, '(unnamed model)' AS scope
    FROM (SELECT DISTINCT service, usage_type FROM fact_keys) t
    JOIN (SELECT DISTINCT service FROM scope_names) m ON m.service = t.service
    JOIN driver_rules r
      ON r.service = t.service AND r.usage_type_pattern <> '' AND contains(coalesce(t.usage_type, ''), r.usage_type_pattern)
) u ON u.service = k.service AND u.usage_type = k.usage_type
