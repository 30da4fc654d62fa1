"""Which CUR delivery each table of a month was computed from, and whether the month's tables agree.

Every asset replaces its month in its own transaction, so a run killed between two steps (SIGKILL during
`hourly_cost_facts`) leaves `cur_line_items` holding the new delivery and the tables after it the old one. Each
table of the chain therefore records the delivery it was computed from (`delivery_id`, the column cur_line_items
already has), and whatever reads a month (the assets downstream, statements and their exports, invoices, the API)
refuses a month whose tables disagree, naming the first table to re-run.

Rows written before the column existed hold NULL: their lineage is unknown and they are not compared.
"""

from __future__ import annotations

import datetime as dt

# In the order they are computed: each is derived from the one before it.
CHAIN = ("cur_line_items", "hourly_cost_facts", "tenant_costs", "reconciliation_report", "statements")
# The parameter name the wrapped stage SQL uses (unlikely to meet a stage's own parameters).
PARAM = "lineage_delivery_id"


def deliveries_by_table(engine, period: dt.date, tables=CHAIN) -> dict[str, list[str]]:
    """The distinct non-NULL delivery ids each table holds for the month."""
    union = " UNION ALL ".join(
        f"SELECT '{t}' AS table_name, delivery_id FROM {t} WHERE billing_period = ? AND delivery_id IS NOT NULL "
        f"GROUP BY delivery_id" for t in tables)
    found: dict[str, list[str]] = {t: [] for t in tables}
    for table, delivery in engine.execute(union, [period] * len(tables)).fetchall():
        found[table].append(delivery)
    return {t: sorted(ids) for t, ids in found.items()}


def problem(engine, period: dt.date, through: str) -> str | None:
    """Why the month's tables up to `through` (inclusive) do not all come from one delivery, naming the asset to
    re-run; None when they agree. The reference is cur_line_items' delivery (or, for a month without line items,
    the first table that records one); tables without rows for the month have nothing to disagree with."""
    return _disagreement(deliveries_by_table(engine, period, CHAIN[: CHAIN.index(through) + 1]), period)


def _disagreement(found: dict[str, list[str]], period: dt.date) -> str | None:
    tables = list(found)
    month = f"{period:%Y-%m}"
    if len(found["cur_line_items"]) > 1:
        return (f"cur_line_items of {month} holds {len(found['cur_line_items'])} deliveries "
                f"({', '.join(found['cur_line_items'])}): re-run cur_line_items")
    reference = None
    for table in tables:
        if not found[table]:
            continue
        if reference is None:
            reference = table
        elif found[table] != found[reference]:
            return (f"{table} of {month} was computed from delivery {', '.join(found[table])}, but {reference} "
                    f"holds delivery {', '.join(found[reference])}: re-run {table} and the assets after it for "
                    f"{month} (dagster asset materialize --select '{table}*' --partition {period.isoformat()})")
    return None


# Whether a month lacking rows of a chain table means the table was never materialized for the month rather than
# that it came out empty: cur_line_items never holds an empty month (load_delivery refuses one) and the facts hold
# every line item; tenant_costs is empty only for a month without application cost, the report only without
# tenant costs. None: always; else a query with a row when the table must hold the month.
MUST_HOLD = {
    "cur_line_items": None,
    "hourly_cost_facts": None,
    "tenant_costs": "SELECT 1 FROM hourly_cost_facts WHERE billing_period = ? AND in_scope LIMIT 1",
    "reconciliation_report": "SELECT 1 FROM tenant_costs WHERE billing_period = ? LIMIT 1",
}


def require_upstream(engine, period: dt.date, asset: str, through: str | None = None) -> None:
    """A Dagster Failure when the table the asset reads from in the chain (the one before `asset`, or `through`, for
    an asset outside the chain) holds nothing of the month though it must (MUST_HOLD), naming it and the command
    that materializes it. An asset run on its own (`dagster asset materialize --select tenant_costs`) for a month
    whose upstream never ran read nothing and wrote an empty month, its checks passed (they compare with the same
    empty upstream) and the run was green. Only that table for a chain asset (the ones before it were read when it
    was built); every table up to `through` for an asset outside the chain (the write-back deletes what a month
    without tenant costs no longer produces: an empty warehouse must not read as such a month)."""
    for table in CHAIN[: CHAIN.index(through) + 1] if through else [CHAIN[CHAIN.index(asset) - 1]]:
        if engine.execute(f"SELECT 1 FROM {table} WHERE billing_period = ? LIMIT 1", [period]).fetchall():
            continue
        if MUST_HOLD[table] is None or engine.execute(MUST_HOLD[table], [period]).fetchall():
            from dagster import Failure  # here: the API imports this module without Dagster

            month = f"{period:%Y-%m}"
            raise Failure(f"{asset} of {month}: {table} holds nothing of {month} (never materialized for the "
                          f"month): materialize it first (dagster asset materialize -m billing_pipeline.definitions "
                          f"--select {table} --partition {period.isoformat()}); nothing written")


def month_delivery(engine, period: dt.date, through: str) -> str | None:
    """The delivery the month's tables up to `through` come from (None: no line items); a Dagster Failure saying
    which asset to re-run when they disagree."""
    found = deliveries_by_table(engine, period, CHAIN[: CHAIN.index(through) + 1])
    reason = _disagreement(found, period)
    if reason:
        from dagster import Failure  # here: the API imports this module without Dagster

        raise Failure(f"Refusing {period:%Y-%m}: {reason}")
    current = found["cur_line_items"]
    return current[0] if current else None


def stamped(sql: str) -> str:
    """A stage's query with the delivery it is computed from as a last column (parameter `$lineage_delivery_id`,
    '' for none), so the SQL files stay as they are and both engines write it alike."""
    return f"SELECT computed.*, NULLIF(${PARAM}, '') AS delivery_id FROM ({sql}) AS computed"


def stamp_params(params: dict | None, delivery: str | None) -> dict:
    return {**(params or {}), PARAM: delivery or ""}
