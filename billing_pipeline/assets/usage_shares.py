"""usage_shares: each tenant's measured usage of the shared services, hour by hour, from the logs."""

import datetime as dt

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import markdown, month_of, stage_sql
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.checks.guard import guard
from billing_pipeline.checks.usage_shares import GRAIN as SHARES_GRAIN, uneven_shares
from billing_pipeline.catalog import load_catalog
from billing_pipeline.nowcast import evidence_needed_from
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.readers.usage_logs import read_usage_evidence
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse


def vanished_evidence(con) -> dict:
    """What usage_shares_kept holds: its hours, first and last, and the drivers (service/driver) it keeps."""
    ((hours, first, last),) = con.execute(
        "SELECT count(DISTINCT usage_hour), min(usage_hour), max(usage_hour) FROM usage_shares_kept").fetchall()
    if not hours:
        return {"hours": 0}
    drivers = con.execute("SELECT DISTINCT service, driver FROM usage_shares_kept").fetchall()
    return {"hours": int(hours), "first_hour": str(first), "last_hour": str(last),
            "drivers": ", ".join(sorted(f"{service}/{driver}" for service, driver in drivers))}


class UsageSharesConfig(Config):
    # month_to_date_job sets it: only the hours the CUR has not covered are re-read (docs/realtime.md)
    after_coverage: bool = False
    # evidence read before and no longer found (expired logs) stays as read (usage_shares_kept.sql); false: the
    # month becomes exactly what is read now (a wrong log source removed on purpose)
    keep_vanished_evidence: bool = True


@asset(
    partitions_def=billing_month_partitions,
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb", "s3"},
)
def usage_shares(
    context: AssetExecutionContext, config: UsageSharesConfig, billing_config: BillingConfig,
    warehouse: BillingWarehouse,
) -> MaterializeResult:
    """Usage per hour x service x driver x scope x tenant (Lambda GB-seconds and requests, DynamoDB read and
    write units, S3 GB-months, AgentCore sessions and tool calls, Bedrock tokens) and each tenant's share.
    Malformed or ownerless log lines are counted in the metadata, never fatal: ownerless usage is the
    pseudo-tenant `unattributed`. With `after_coverage` (the month_to_date refresh) only the hours from the CUR's
    coverage on are re-read and replaced, from the files that can hold them; the covered hours stay as they are.
    Evidence read before and no longer found (logs expired before AWS restated the month) is kept as it was read
    (usage_shares_kept.sql says per what), and counted in the metadata (`kept_vanished_evidence`)."""
    period, next_period = month_of(context)
    since = None
    if config.after_coverage:
        with warehouse.connect() as con:
            since = evidence_needed_from(con, period)
    logs, inventory = billing_config.logs_source(), billing_config.s3_inventory_location()
    if warehouse.engine_name() == "spark":  # read and parsed by the executors; only aggregated evidence comes back
        with warehouse.connect() as con:
            evidence = con.read_usage_evidence(logs, inventory, period, since=since)
    else:  # parsed here, before the warehouse file (one writer at a time) is opened
        evidence = read_usage_evidence(logs, inventory, period, since=since)
    # the parsers may only measure drivers the catalog names (one vocabulary; see catalog.json)
    unknown = sorted({pair for pair in zip(evidence.usage["service"].to_pylist(), evidence.usage["driver"].to_pylist())
                      if not load_catalog().knows(*pair)})
    if unknown:
        raise Failure(f"usage evidence of drivers catalog.json does not name: {unknown}")
    with warehouse.connect() as con:
        con.register("usage_evidence", evidence.usage)
        checks = guard("usage_shares", period, {  # the table's blocking checks, before the commit
            "shares_sum_to_one": lambda relation: uneven_shares(con, period, relation),
            "no_duplicate_shares": lambda relation: duplicate_check(con, relation, SHARES_GRAIN, period)})
        try:
            params = {"billing_period": period, "next_period": next_period}
            shares_sql = stage_sql("usage_shares")
            kept = {}
            if config.keep_vanished_evidence:
                con.stage("usage_shares_kept", stage_sql("usage_shares_kept"),
                          {"billing_period": period, "since": since or dt.datetime.combine(period, dt.time())})
                kept = vanished_evidence(con)
                # the read of now, but for the keys whose stored rows are kept whole (usage_shares_kept.sql), and
                # the kept rows (of those keys, and of log drivers the read of now has nothing of)
                columns = ("billing_period, usage_hour, service, driver, scope, accountant_id, quantity, "
                           "total_quantity, share")
                shares_sql = (f"SELECT {columns} FROM ({shares_sql}\n) AS fresh WHERE NOT EXISTS (SELECT 1 FROM "
                              "usage_shares_kept AS k WHERE k.whole_key AND k.usage_hour = fresh.usage_hour AND "
                              "k.service = fresh.service AND k.scope = fresh.scope AND (k.driver LIKE 'gb_months%') "
                              f"= (fresh.driver LIKE 'gb_months%')) UNION ALL SELECT {columns} FROM usage_shares_kept")
            if since is None:
                rows = con.replace_month_with_query("usage_shares", period, shares_sql, params, verify=checks)
            else:  # the hourly refresh: only the hours after the CUR's coverage are re-read and replaced
                rows = con.replace_hours_from("usage_shares", period, since, shares_sql, params, verify=checks)
        finally:
            con.unregister("usage_evidence")
            if config.keep_vanished_evidence:
                con.drop("usage_shares_kept")
        by_driver = markdown(
            con,
            """SELECT service, driver, count(DISTINCT usage_hour) AS hours, count(DISTINCT accountant_id) AS tenants,
                      sum(quantity) AS quantity, sum(quantity) FILTER (accountant_id = 'unattributed') AS unattributed
               FROM usage_shares WHERE billing_period = $billing_period GROUP BY ALL ORDER BY service, driver""",
            {"billing_period": period},
        )
    metadata = {
        "dagster/row_count": MetadataValue.int(rows),
        "log_lines_read": MetadataValue.int(evidence.lines_read),
        "files_read": MetadataValue.int(evidence.files_read),
        "read_from": str(since) if since else "the whole month",
        "problem_lines": MetadataValue.int(sum(evidence.problems.values())),
        "by_driver": by_driver,
    }
    metadata.update({f"kept_vanished_evidence/{name}": value for name, value in kept.items()})
    if kept.get("hours"):
        context.log.warning(
            f"{period:%Y-%m}: usage evidence read before is no longer found for {kept['hours']} hour(s) "
            f"({kept['first_hour']} to {kept['last_hour']}; {kept['drivers']}): kept as it was read (expired "
            "logs?); usage_shares' config keep_vanished_evidence: false replaces it with what is read now")
    metadata.update({f"problems/{reason}": MetadataValue.int(count) for reason, count in sorted(evidence.problems.items())})
    if evidence.problems:
        # lines or objects not attributed as read, and bucket-hours of several inventory configurations (the
        # largest counted): each named in readers/usage_logs.py
        context.log.warning(f"{period:%Y-%m}: usage evidence not counted as read (problems/* in the metadata, "
                            f"readers/usage_logs.py): {evidence.problems}")
    return MaterializeResult(metadata=metadata)
