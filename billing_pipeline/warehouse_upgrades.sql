-- Columns added after warehouses were first created (CREATE TABLE IF NOT EXISTS leaves an existing table as it
-- was): added in place, so a warehouse from before keeps its months. Loaded after the other warehouse_*.sql.

-- The delivery each month was computed from (billing_pipeline/lineage.py); NULL in rows written before.
ALTER TABLE hourly_cost_facts ADD COLUMN IF NOT EXISTS delivery_id VARCHAR;
ALTER TABLE tenant_costs ADD COLUMN IF NOT EXISTS delivery_id VARCHAR;
ALTER TABLE reconciliation_report ADD COLUMN IF NOT EXISTS delivery_id VARCHAR;
ALTER TABLE statements ADD COLUMN IF NOT EXISTS delivery_id VARCHAR;
