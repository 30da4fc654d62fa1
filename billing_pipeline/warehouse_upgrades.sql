-- Columns added after warehouses were first created (CREATE TABLE IF NOT EXISTS leaves an existing table as it
-- was): added in place, so a warehouse from before keeps its months. Loaded after the other warehouse_*.sql.

-- A line's discount column (discount/TotalDiscount), in no cost: NULL in rows written before.
ALTER TABLE cur_line_items ADD COLUMN IF NOT EXISTS column_discount DECIMAL(38, 10);
-- lineItem/ProductCode as AWS wrote it, where `service` is the catalog service the line is read as: NULL before.
ALTER TABLE cur_line_items ADD COLUMN IF NOT EXISTS product_code VARCHAR;
ALTER TABLE hourly_cost_facts ADD COLUMN IF NOT EXISTS product_code VARCHAR;

-- The delivery each month was computed from (billing_pipeline/lineage.py); NULL in rows written before.
ALTER TABLE hourly_cost_facts ADD COLUMN IF NOT EXISTS delivery_id VARCHAR;
ALTER TABLE tenant_costs ADD COLUMN IF NOT EXISTS delivery_id VARCHAR;
ALTER TABLE reconciliation_report ADD COLUMN IF NOT EXISTS delivery_id VARCHAR;
ALTER TABLE statements ADD COLUMN IF NOT EXISTS delivery_id VARCHAR;

-- The coverage-aligned reconciliation (docs/realtime.md); NULL in rows written before.
ALTER TABLE reconciliation_report ADD COLUMN IF NOT EXISTS covered_through TIMESTAMP;
ALTER TABLE reconciliation_report ADD COLUMN IF NOT EXISTS covered_days_through DATE;
ALTER TABLE reconciliation_report ADD COLUMN IF NOT EXISTS estimated_covered_cost DECIMAL(38, 10);
ALTER TABLE reconciliation_report ADD COLUMN IF NOT EXISTS actual_covered_cost DECIMAL(38, 10);
ALTER TABLE reconciliation_report ADD COLUMN IF NOT EXISTS covered_variance DECIMAL(38, 10);
ALTER TABLE reconciliation_report ADD COLUMN IF NOT EXISTS covered_variance_pct DECIMAL(38, 4);
ALTER TABLE reconciliation_report ADD COLUMN IF NOT EXISTS estimated_after_coverage DECIMAL(38, 10);
