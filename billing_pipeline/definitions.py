"""Everything Dagster loads: `dagster dev` (via workspace.yaml) and `dagster asset materialize -m
billing_pipeline.definitions`."""

from dagster import Definitions, get_dagster_logger, in_process_executor, load_asset_checks_from_package_module

from billing_pipeline import checks

from billing_pipeline.assets.cost_explorer_costs import cost_explorer_costs
from billing_pipeline.assets.cur_line_items import cur_line_items
from billing_pipeline.assets.estimated_usage import estimated_usage
from billing_pipeline.assets.hourly_cost_facts import hourly_cost_facts
from billing_pipeline.assets.implausible_money import implausible_money
from billing_pipeline.assets.invoices import invoices
from billing_pipeline.assets.month_to_date import month_to_date
from billing_pipeline.assets.nowcast_accuracy import nowcast_accuracy
from billing_pipeline.assets.pricing_feedback import pricing_feedback
from billing_pipeline.assets.published_billing import published_billing
from billing_pipeline.assets.reconciliation_report import reconciliation_report
from billing_pipeline.assets.statements import statements
from billing_pipeline.assets.tenant_costs import tenant_costs
from billing_pipeline.assets.tenant_registry import tenant_registry
from billing_pipeline.assets.usage_shares import usage_shares
from billing_pipeline.assets.usage_table_writeback import usage_table_writeback
from billing_pipeline.jobs import billing_month_job, month_to_date_job
from billing_pipeline.resources.aws import AwsClients
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.money_bounds import MoneyBounds
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.stripe_billing import StripeBilling
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import BillingWarehouse, DuckDBWarehouse, SparkWarehouse
from billing_pipeline.schedules import daily_billing_refresh, hourly_month_to_date
from billing_pipeline.sensors import cur_delivery_sensor, usage_evidence_sensor
from billing_pipeline.settings import setting_value

# The warehouse resource of each BILLING_ENGINE value, bound to the key `warehouse` that every asset uses
WAREHOUSES: dict[str, type[BillingWarehouse]] = {"duckdb": DuckDBWarehouse, "spark": SparkWarehouse}


def warehouse_for(engine: str | None = None) -> BillingWarehouse:
    """The warehouse of `engine`, else of BILLING_ENGINE, chosen when the definitions load (the UI and `dagster
    definitions validate` show which). A value that is no engine gets the default's, whose first run then fails
    naming the value, as every bad setting does (settings.py)."""
    name = (engine or setting_value("BILLING_ENGINE")).strip().lower()
    return WAREHOUSES.get(name, DuckDBWarehouse)()


engine = setting_value("BILLING_ENGINE")
warehouse = warehouse_for(engine)
get_dagster_logger().info(f"The warehouse: {type(warehouse).__name__} (BILLING_ENGINE={engine!r}"
                          f"{'' if engine.strip().lower() in WAREHOUSES else ', not an engine: every run fails at start'})")


defs = Definitions(
    assets=[cur_line_items, hourly_cost_facts, usage_shares, estimated_usage, tenant_costs, reconciliation_report,
            tenant_registry, implausible_money, invoices, pricing_feedback, statements, usage_table_writeback,
            cost_explorer_costs, published_billing, month_to_date, nowcast_accuracy],
    # every @asset_check of billing_pipeline/checks/<table>.py
    asset_checks=load_asset_checks_from_package_module(checks),
    jobs=[billing_month_job, month_to_date_job],
    schedules=[daily_billing_refresh, hourly_month_to_date],
    sensors=[cur_delivery_sensor, usage_evidence_sensor],
    resources={"billing_config": BillingConfig(), "warehouse": warehouse,
               "stripe_billing": StripeBilling(), "outputs_config": OutputsConfig(), "aws": AwsClients(),
               "tenants": TenantRegistry(), "money_bounds": MoneyBounds()},
    # Every step writes the one DuckDB file: steps of a run go one after another in one process, and runs are
    # serialized by the `duckdb_warehouse` concurrency pool (dagster_home/dagster.yaml).
    executor=in_process_executor,
)
