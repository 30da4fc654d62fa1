"""The README's first command, then the dashboard on what it published: the provisional month whose CUR stops on
21 January at 18:00 UTC while its logs go on shows its month to date (actual through the CUR's coverage, estimated
after it, the forecast and its interval) in GET /billing and in headless Chromium. Expected values are read from
the demo's warehouse (`month_to_date`, `statements`) and rounded by the documented rule, not by the code under test."""

from __future__ import annotations

import os
from decimal import ROUND_HALF_UP
from decimal import Decimal as D
from pathlib import Path

import duckdb
import httpx
import pytest

from billing_pipeline.api.auth import issue_token
from billing_pipeline.money import largest_remainder_cents

from billing_pipeline_tests.conftest import DEMO_GROUP

from .conftest import serving
from .test_dashboard import CHROMIUM, chromium, money_text

A = "acct-0001"


pytestmark = DEMO_GROUP


@pytest.fixture(scope="module")
def demo(demo_run):
    root = demo_run[0]
    tokens = root / "tokens.json"
    token = issue_token(A, str(tokens))
    with serving(root / "data" / "published", tokens, root / "server.log") as base:
        yield root, base, token


def expected_month_to_date(warehouse: Path) -> dict:
    """acct-0001's January so far, from the warehouse: sums over its resource types; cents: the actual part's are
    the statement's, cost to date and forecast by largest remainder over the month's rows, the interval half up."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("""SELECT accountant_id, sum(actual_cost), sum(estimated_cost), sum(cost_to_date),
                                     sum(forecast_cost), sum(forecast_low), sum(forecast_high),
                                     max(covered_through), max(as_of)
                              FROM month_to_date WHERE billing_period = DATE '2026-01-01' GROUP BY ALL""").fetchall()
        (statement_cents,), = con.execute("""SELECT amount FROM statements WHERE billing_period = DATE '2026-01-01'
                                             AND accountant_id = ? AND line = 'total'""", [A]).fetchall()
    by = {r[0]: r for r in rows}
    to_date = largest_remainder_cents({a: r[3] for a, r in by.items()})
    forecast = largest_remainder_cents({a: r[4] for a, r in by.items()})
    _a, actual, estimated, cost_to_date, fcost, low, high, covered, as_of = by[A]

    def money(amount, cents):
        return {"exact": f"{amount:f}", "rounded": f"{cents:f}", "cents": int(cents * 100)}

    return {"currency": "USD", "actual_cost": money(actual, statement_cents),
            "estimated_cost": money(estimated, to_date[A] - statement_cents),
            "cost_to_date": money(cost_to_date, to_date[A]), "forecast_cost": money(fcost, forecast[A]),
            "forecast_low": money(low, low.quantize(D("0.01"), ROUND_HALF_UP)),
            "forecast_high": money(high, high.quantize(D("0.01"), ROUND_HALF_UP)),
            "covered_through": f"{covered:%Y-%m-%dT%H:%M:%S}Z", "as_of": f"{as_of:%Y-%m-%dT%H:%M:%S}Z"}


def test_get_billing_serves_the_demos_month_to_date(demo):
    root, base, token = demo
    headers = {"Authorization": f"Bearer {token}"}
    doc = httpx.get(f"{base}/billing", headers=headers, timeout=20).json()  # no month: the latest
    assert (doc["month"], doc["status"]) == ("2026-01", "provisional")
    expected = expected_month_to_date(root / "data" / "warehouse.duckdb")
    assert doc["month_to_date"] == expected
    assert expected["covered_through"] == "2026-01-21T18:00:00Z"
    assert expected["estimated_cost"]["cents"] > 0  # the hours after the CUR's coverage are estimated
    # the month's statement itself is unchanged: the actual part is the statement
    assert doc["month_to_date"]["actual_cost"] == doc["actual_cost"]
    # history: unchanged shape, no month to date
    history = httpx.get(f"{base}/billing/history", headers=headers, timeout=20).json()["months"]
    assert [m["month"] for m in history] == ["2026-01", "2025-12"]
    assert all(set(m) == {"month", "currency", "status", "is_final", "total_source", "total_cost", "actual_cost",
                          "estimated_cost", "variance", "flagged", "published"} for m in history)
    december = httpx.get(f"{base}/billing", params={"month": "2025-12"}, headers=headers, timeout=20).json()
    assert december["status"] == "final" and december["month_to_date"] is None


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"headless Chromium not installed at {CHROMIUM}")
def test_dashboard_shows_the_demos_month_to_date(demo, tmp_path):
    root, base, token = demo
    mtd = expected_month_to_date(root / "data" / "warehouse.duckdb")
    dom = chromium(tmp_path / "profile", "--dump-dom", f"{base}/#token={token}").stdout
    (tmp_path / "dashboard.html").write_text(dom)
    assert 'data-loaded="2026-01"' in dom

    def text(m):
        return money_text(D(m["rounded"]))

    assert f'<span id="mtd-actual">{text(mtd["actual_cost"])}</span>' in dom
    assert '<span id="mtd-covered" class="muted">actual through 2026-01-21 18:00 UTC</span>' in dom
    assert f'<span id="mtd-estimated">{text(mtd["estimated_cost"])}</span>' in dom
    assert ('<span id="mtd-as-of" class="muted">estimated from usage through '
            f'{mtd["as_of"][:16].replace("T", " ")} UTC</span>') in dom
    assert f'<dd id="mtd-to-date">{text(mtd["cost_to_date"])}</dd>' in dom
    assert (f'<dd id="mtd-forecast">{text(mtd["forecast_cost"])} (interval {text(mtd["forecast_low"])} to '
            f'{text(mtd["forecast_high"])})</dd>') in dom
    # the bar: actual solid, estimated hatched, the forecast and its interval; the trend's January the same
    assert 'class="actual"' in dom and 'class="estimated-part"' in dom and 'class="forecast"' in dom
    assert dom.count('class="interval"') >= 4  # the interval and its two ends, and the trend's
    january = dom[dom.index('data-month="2026-01">'):]
    assert january.index('class="estimated-part"') < january.index("</g>")
    assert dom.count('class="estimated-part"') == 2  # the month-to-date bar's and the trend's January
    shot = tmp_path / "dashboard-demo.png"  # kept for looking at
    chromium(tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,1400", "--hide-scrollbars",
             f"{base}/#token={token}")
    assert shot.exists()
