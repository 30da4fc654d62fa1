-- usage_shares_kept: the month's stored rows (from $since) of each hour x service x scope x source that the
-- evidence read now has nothing of (source: the S3 Inventory's stored bytes, drivers `gb_months*`, or the logs).
-- Logs expire (CloudWatch retention, S3 lifecycle rules) long before AWS stops restating a month: a month re-read
-- after its logs are gone would find no evidence and move its tenants' cost to the fallbacks and `unattributed`.
-- Usage records are never withdrawn, so evidence read once and no longer found was lost, not corrected: it stays
-- as it was read (usage_shares' config `keep_vanished_evidence: false` replaces the month with what is read now,
-- when a wrong source is what is being removed).
-- Keyed by source, not by driver: a reader that now names a source's evidence otherwise (Intelligent-Tiering's
-- bytes per access tier, where they were one driver) replaces the old rows instead of keeping them beside the new
-- ones, which would count the same bytes twice.
-- A key whose read of now finds only ownerless usage while the stored rows had owners lost the lines naming them
-- (an AgentCore runtime's application log group, naming each session's tenant, kept for less time than its usage
-- log group): its stored rows are kept too, and usage_shares leaves out the read of now for those keys.
-- A log driver the read of now has nothing of in a key it still has other drivers of lost its own lines (an
-- AgentCore runtime's vended usage logs, its vCPU- and GB-hours, kept for less time than the application log group
-- naming its sessions and tool calls): that driver's stored rows are kept, beside the read of now of the others,
-- unless the read of now names a driver the stored rows of the key do not (a reader naming the evidence otherwise:
-- the key is replaced whole). Not for the inventory's bytes: a snapshot read again without a storage class holds
-- none of it. `whole_key`: the key's read of now is left out (usage_shares).
-- Input: the stored `usage_shares` and the relation `usage_evidence` (the read now).
WITH stored AS (
    SELECT billing_period, usage_hour, service, driver, scope, accountant_id, quantity, total_quantity, share,
           driver LIKE 'gb_months%' AS stored_bytes
    FROM usage_shares
    WHERE billing_period = $billing_period AND usage_hour >= $since
),
fresh_drivers AS (
    SELECT usage_hour, service, coalesce(scope, '') AS scope, driver, driver LIKE 'gb_months%' AS stored_bytes,
           bool_or(accountant_id <> 'unattributed') AS owned
    FROM usage_evidence
    WHERE quantity > 0
    GROUP BY ALL
),
fresh AS (
    SELECT usage_hour, service, scope, stored_bytes, bool_or(owned) AS owned
    FROM fresh_drivers
    GROUP BY ALL
),
stored_keys AS (
    SELECT usage_hour, service, scope, stored_bytes, bool_or(accountant_id <> 'unattributed') AS owned
    FROM stored
    GROUP BY ALL
),
vanished AS (
    SELECT k.usage_hour, k.service, k.scope, k.stored_bytes
    FROM stored_keys AS k
    LEFT JOIN fresh AS f
      ON f.usage_hour = k.usage_hour AND f.service = k.service AND f.scope = k.scope
     AND f.stored_bytes = k.stored_bytes
    WHERE f.usage_hour IS NULL OR (k.owned AND NOT f.owned)
),
-- log keys the read of now names a driver of that the stored rows do not: replaced whole
renamed AS (
    SELECT DISTINCT f.usage_hour, f.service, f.scope
    FROM fresh_drivers AS f
    WHERE NOT f.stored_bytes AND NOT EXISTS (
        SELECT 1 FROM stored AS s
        WHERE s.usage_hour = f.usage_hour AND s.service = f.service AND s.scope = f.scope AND s.driver = f.driver)
)
SELECT s.billing_period, s.usage_hour, s.service, s.driver, s.scope, s.accountant_id, s.quantity,
       s.total_quantity, s.share, v.usage_hour IS NOT NULL AS whole_key
FROM stored AS s
LEFT JOIN vanished AS v
  ON v.usage_hour = s.usage_hour AND v.service = s.service AND v.scope = s.scope AND v.stored_bytes = s.stored_bytes
WHERE v.usage_hour IS NOT NULL
   OR (NOT s.stored_bytes
       AND NOT EXISTS (SELECT 1 FROM fresh_drivers AS f
                       WHERE f.usage_hour = s.usage_hour AND f.service = s.service AND f.scope = s.scope
                         AND f.driver = s.driver)
       AND NOT EXISTS (SELECT 1 FROM renamed AS r
                       WHERE r.usage_hour = s.usage_hour AND r.service = s.service AND r.scope = s.scope))
