-- evidence_scope_names: the evidence's scope under the name the facts use (a modelId names its catalog model,
-- first match in catalog order; scope_names). cost_allocations.sql and month_to_date.sql include it (sql.py) as
-- the body of a CTE.
-- Input: a relation `evidence_scopes(service, scope)`. Output: (service, evidence_scope, scope) for the evidence
-- scopes of a service with scope_names: the catalog name that matches, else '(unnamed model)' (the token lines of
-- models the catalog does not name have that scope too: fact_key_scopes.sql). Evidence without a scope ('') and
-- of other services keeps its own.
-- An application inference profile ARN (`arn:aws:bedrock:<region>:<account>:application-inference-profile/<id>`)
-- names no model (the id is random): its tokens are the scope '(application inference profile)', which no fact has,
-- so they are never evidence for a model's line, not even an unnamed model's (AWS bills such usage under the
-- model's own usage type, with the profile's cost allocation tags: a tagged line is direct cost). A cross-Region
-- (system-defined) profile id or ARN (`us.`/`eu.`/`apac.`/`global.anthropic...`) names its model as above.
SELECT k.service, k.scope AS evidence_scope,
       CASE WHEN contains(k.scope, ':application-inference-profile/') THEN '(application inference profile)'
            ELSE coalesce(min_by(n.scope, n.name_order), '(unnamed model)') END AS scope
FROM evidence_scopes k
JOIN (SELECT DISTINCT service FROM scope_names) m ON m.service = k.service
-- A name matches whole: followed by the end, ':', a version ('-v<n>', '-<n>:' as in `openai.gpt-oss-120b-1:0`) or
-- a '-YYYYMMDD' date, never by more of a model name (`claude-sonnet-4` names
-- `anthropic.claude-sonnet-4-20250514-v1:0`, not `anthropic.claude-sonnet-4-5-...`).
LEFT JOIN scope_names n
  ON n.service = k.service AND contains(k.scope, n.evidence_pattern)
 AND regexp_matches(substr(k.scope, strpos(k.scope, n.evidence_pattern) + length(n.evidence_pattern)),
                    '^(:|-v[0-9]|-[0-9]+:|-[0-9]{8}|$)')
WHERE k.scope <> ''
GROUP BY k.service, k.scope
