-- evidence_scope_names: the evidence's scope under the name the facts use (a modelId names its catalog model,
-- first match in catalog order; scope_names). cost_allocations.sql and month_to_date.sql include it (sql.py) as
-- the body of a CTE.
-- Input: a relation `evidence_scopes(service, scope)`. Output: (service, evidence_scope, scope) for the evidence
-- scopes a catalog name matches; any other keeps its own.
SELECT k.service, k.scope AS evidence_scope, min_by(n.scope, n.name_order) AS scope
FROM evidence_scopes k
JOIN scope_names n ON n.service = k.service AND contains(k.scope, n.evidence_pattern)
GROUP BY k.service, k.scope
