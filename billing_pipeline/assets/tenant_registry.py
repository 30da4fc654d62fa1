"""tenant_registry: which accountant ids of the month's cost are tenants, and which only look like one.

Every accountant id of `tenant_costs` is looked up in the tenant registry (resources/tenant_registry.py): `known`,
`lookalike` (reads as a known id once case, surrounding whitespace, NFKC and Unicode confusables are set aside:
"'acct‐0001' looks like 'acct-0001'"), `unknown`, or `unattributed`. Nothing is moved or dropped: the cost stays
under the id it was tagged with. The WARN check `tenants_are_known` lists every id that is not a tenant, and cost
tagged `unattributed` (a reserved word a tag should never carry: it would keep the cost out of billing).
Invoicing reads the registry itself (assets/invoices.py), so an unknown id is never charged even if this asset
was not re-run; so do statements, the reconciliation report, pricing feedback and the published snapshot, which
show every id outside the registry as one 'unknown' row (`reporting_known_tenants`), so no such id appears as a
tenant in a statement, an export or the API.
"""

import unicodedata
from contextlib import contextmanager

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from billing_pipeline.assets.common import month_of
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.resources.tenant_registry import Registry, TenantRegistry, TenantRegistryError
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse, replace_month_with_rows

SCHEMA = pa.schema([
    ("billing_period", pa.date32()),
    ("accountant_id", pa.string()),
    ("currency", pa.string()),
    ("status", pa.string()),
    ("looks_like", pa.string()),
    ("cost", pa.decimal128(38, 10)),
    ("tagged_cost", pa.decimal128(38, 10)),
    ("registry_source", pa.string()),
])


# What statements, the reconciliation report, their exports and the API show for every id outside the registry
# (unknown ids and look-alikes): one row of that name, so that what they list adds up to the in-scope cost while
# no such id appears as a tenant (a reserved id: never a tenant of the registry).
NOT_A_TENANT = "unknown"
REPORTED = pa.schema([("accountant_id", pa.string()), ("reported_as", pa.string())])


def reported(table: str, columns: list[str], alias: str | None = None) -> str:
    """`table` as a subquery (named `alias`, else like the table) in which accountant_id is as reported (the
    relation `reported_tenants`, see reporting_known_tenants), with the other `columns`."""
    others = ", ".join(f"t.{c}" for c in columns)
    return (f"(SELECT coalesce(r.reported_as, t.accountant_id) AS accountant_id, {others} FROM {table} t "
            f"LEFT JOIN reported_tenants r ON r.accountant_id = t.accountant_id) AS {alias or table}")


def reported_tenants(con, registry: Registry, period) -> pa.Table:
    """Every id of the month's cost, estimates and usage that is not a tenant, mapped to NOT_A_TENANT."""
    ids = con.execute(
        """SELECT accountant_id FROM tenant_costs WHERE billing_period = ?
           UNION SELECT accountant_id FROM estimated_usage WHERE billing_period = ?
           UNION SELECT accountant_id FROM usage_shares WHERE billing_period = ?""",
        [period, period, period]).fetchall()
    rows = [{"accountant_id": a, "reported_as": NOT_A_TENANT} for (a,) in sorted(i for i in ids if i[0] is not None)
            if registry.classify(a)[0] in ("unknown", "lookalike")]
    # a row that matches nothing, so the relation is never empty (Spark infers nothing from an empty Arrow table)
    rows.append({"accountant_id": None, "reported_as": None})
    return pa.Table.from_pylist(rows, schema=REPORTED)


@contextmanager
def reporting_known_tenants(con, tenants: TenantRegistry, period):
    """The relation `reported_tenants` for the month (see reported_tenants) while the block runs; yields the
    registry."""
    registry = load_registry(tenants, con)
    con.register("reported_tenants", reported_tenants(con, registry, period))
    try:
        yield registry
    finally:
        con.unregister("reported_tenants")


def load_registry(registry: TenantRegistry, engine) -> Registry:
    try:
        return registry.load(engine)
    except TenantRegistryError as error:
        raise Failure(str(error)) from None


def describe(accountant_id: str, status: str, looks_like: str | None) -> str:
    """One readable line per id that is not a tenant; odd characters named by code point."""
    odd = [f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in accountant_id
           if not (c.isascii() and c.isprintable()) or c == " "]
    detail = f" ({', '.join(dict.fromkeys(odd))})" if odd else ""
    if status == "lookalike":
        return f"{accountant_id!r} looks like {looks_like!r}{detail}"
    return f"{accountant_id!r} is not in the tenant registry{detail}"


@asset(
    partitions_def=billing_month_partitions,
    deps=["tenant_costs", "estimated_usage"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb"},
    check_specs=[AssetCheckSpec(
        "tenants_are_known", asset="tenant_registry",
        description="Every accountant id that carries cost is a tenant of the registry (WARN: unknown ids and "
                    "look-alikes are held out of invoices; their cost stays under the id).")],
)
def tenant_registry(context: AssetExecutionContext, warehouse: BillingWarehouse,
                    tenants: TenantRegistry) -> MaterializeResult:
    """Per accountant id and currency of the month's tenant_costs: known, lookalike (of which known id), unknown
    or unattributed, with its cost and the part tagged directly."""
    period, _ = month_of(context)
    with warehouse.connect() as con:
        registry = load_registry(tenants, con)
        costs = con.execute(
            """SELECT accountant_id, currency, CAST(sum(cost) AS DECIMAL(38, 10)),
                      CAST(coalesce(sum(cost) FILTER (allocation = 'direct'), 0) AS DECIMAL(38, 10))
               FROM tenant_costs WHERE billing_period = ? GROUP BY ALL ORDER BY ALL""",
            [period],
        ).fetchall()
        rows = []
        for accountant, currency, cost, tagged in costs:
            status, looks_like = registry.classify(accountant)
            rows.append({"billing_period": period, "accountant_id": accountant, "currency": currency,
                         "status": status, "looks_like": looks_like, "cost": cost, "tagged_cost": tagged,
                         "registry_source": registry.source})
        written = replace_month_with_rows(con, "tenant_registry", period, pa.Table.from_pylist(rows, schema=SCHEMA))
    check = tenants_check(rows)
    return MaterializeResult(
        metadata={"registry_source": registry.source, "known_tenants": len(registry.known), "rows": written,
                  **{key: value for key, value in check.metadata.items() if key != "count"}},
        check_results=[check],
    )


def tenants_check(rows: list[dict]) -> AssetCheckResult:
    """WARN: ids that are not tenants (unknown, look-alikes) and cost tagged with the reserved `unattributed`."""
    strangers = sorted({(r["accountant_id"], r["status"], r["looks_like"]) for r in rows
                        if r["status"] in ("unknown", "lookalike")})
    tagged_unattributed = sorted({f"{r['tagged_cost']} {r['currency']}" for r in rows
                                  if r["status"] == "unattributed" and r["tagged_cost"] != 0})
    held = {}
    for r in rows:
        if r["status"] in ("unknown", "lookalike"):
            held[f"{r['currency']}"] = held.get(r["currency"], 0) + r["cost"]
    return AssetCheckResult(
        check_name="tenants_are_known",
        passed=not strangers and not tagged_unattributed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "count": len(strangers),
            "unknown_tenants": MetadataValue.json([describe(a, status, like) for a, status, like in strangers]),
            "held_out_cost": MetadataValue.json({c: str(v) for c, v in sorted(held.items())}),
            "tagged_unattributed": MetadataValue.json(tagged_unattributed),
        },
    )
