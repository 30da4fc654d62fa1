-- named_scopes: the scope a usage type names (a Bedrock model: `USE1-Claude3.5Sonnet-input-tokens`, or the product
-- name the reader appends to a Marketplace line's usage type), first match in catalog order (scope_names).
-- cost_allocations.sql and month_to_date.sql include it (sql.py) as the body of a CTE; fact_key_scopes.sql reads it.
-- A name matches whole: not followed by a letter, digit or '.', which would make it another model's
-- (`Claude3Haiku` is not `Claude3Haiku2`, `Claude 3.5 Sonnet` not `Claude 3.5 Sonnet2`).
-- A bedrock-mantle usage type names its model by the model id, `{region}-{model}-mantle-{token type}-{tier}`
-- (`USE1-openai.gpt-oss-120b-mantle-input-tokens-standard`, `USW2-anthropic.claude-opus-4-8-mantle-...`): the part
-- before '-mantle-' matches an entry's `evidence` as a modelId does (evidence_scope_names.sql), so a catalog
-- model's mantle lines and its modelIds meet.
-- Input: a relation `fact_usage_types(service, usage_type)`. Output: (service, usage_type, scope) for those that
-- name one. A fact's scope is that, else group 1 of the catalog's fact_scopes pattern on its resource id, else ''.
SELECT t.service, t.usage_type, min_by(n.scope, n.name_order) AS scope
FROM (SELECT service, usage_type,
             CASE WHEN contains(usage_type, '-mantle-')
                  THEN substr(usage_type, 1, strpos(usage_type, '-mantle-') - 1) END AS mantle_model
      FROM fact_usage_types) t
JOIN scope_names n
  ON n.service = t.service
 AND ((contains(t.usage_type, n.usage_type_pattern)
       AND NOT regexp_matches(substr(t.usage_type, strpos(t.usage_type, n.usage_type_pattern)
                                                   + length(n.usage_type_pattern), 1), '[A-Za-z0-9.]'))
   OR (contains(t.usage_type, n.product_name_pattern)
       AND NOT regexp_matches(substr(t.usage_type, strpos(t.usage_type, n.product_name_pattern)
                                                   + length(n.product_name_pattern), 1), '[A-Za-z0-9.]'))
   OR (contains(t.mantle_model, n.evidence_pattern)
       AND regexp_matches(substr(t.mantle_model, strpos(t.mantle_model, n.evidence_pattern)
                                                 + length(n.evidence_pattern)), '^(:|-v[0-9]|-[0-9]+:|-[0-9]{8}|$)')))
GROUP BY t.service, t.usage_type
