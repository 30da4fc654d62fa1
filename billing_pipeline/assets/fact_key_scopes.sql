-- fact_key_scopes: the scope of each service x usage type x resource: the model its usage type names
-- (named_scopes), else group 1 of the catalog's fact_scopes pattern on the resource id, else ''. Worked out once per
-- key (thousands), not once per fact (millions): the regular expression is most of the cost. cost_allocations.sql
-- and month_to_date.sql include it (sql.py) as the body of a CTE and join it back to their facts on all three
-- columns (IS NOT DISTINCT FROM: usage type and resource id may be NULL).
-- Input: relations `fact_keys(service, usage_type, resource_id)` and `named_scopes(service, usage_type, scope)`.
SELECT k.service, k.usage_type, k.resource_id,
       coalesce(n.scope, regexp_extract(coalesce(k.resource_id, ''), s.resource_id_pattern, 1), '') AS fact_scope
FROM fact_keys k
LEFT JOIN fact_scopes s ON s.service = k.service
LEFT JOIN named_scopes n ON n.service = k.service AND n.usage_type = k.usage_type
