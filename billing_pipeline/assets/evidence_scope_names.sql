-- evidence_scope_names: the evidence's scope under the name the facts use (a modelId names its catalog model,
-- first match in catalog order; scope_names). cost_allocations.sql and month_to_date.sql include it (sql.py) as
-- the body of a CTE.
-- Input: a relation `evidence_scopes(service, scope)`. Output: (service, evidence_scope, scope) for the evidence
-- scopes of a service with scope_names: the catalog name that matches, else '(unnamed model)' (the token lines of
-- models the catalog does not name have that scope too: fact_key_scopes.sql). Evidence without a scope ('') and
-- of other services keeps its own.
SELECT k.service, k.scope AS evidence_scope, coalesce(min_by(n.scope, n.name_order), '(unnamed model)') AS scope
FROM evidence_scopes k
JOIN (SELECT DISTINCT service FROM scope_names) m ON m.service = k.service
LEFT JOIN scope_names n ON n.service = k.service AND contains(k.scope, n.evidence_pattern)
WHERE k.scope <> ''
GROUP BY k.service, k.scope
