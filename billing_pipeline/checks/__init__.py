"""Asset checks, one module per stage (`checks/<table>.py`), each a Dagster `@asset_check` that reads the month
the asset just wrote. Conservation that must hold before anything is written stays in its asset (tenant_costs)."""
