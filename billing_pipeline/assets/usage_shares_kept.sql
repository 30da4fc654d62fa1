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
-- Input: the stored `usage_shares` and the relation `usage_evidence` (the read now).
SELECT s.billing_period, s.usage_hour, s.service, s.driver, s.scope, s.accountant_id, s.quantity,
       s.total_quantity, s.share
FROM usage_shares AS s
WHERE s.billing_period = $billing_period AND s.usage_hour >= $since
  AND NOT EXISTS (SELECT 1 FROM usage_evidence AS e
                  WHERE e.usage_hour = s.usage_hour AND e.service = s.service
                    AND coalesce(e.scope, '') = s.scope
                    AND (e.driver LIKE 'gb_months%') = (s.driver LIKE 'gb_months%') AND e.quantity > 0)
