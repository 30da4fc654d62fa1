"""The application's AWS side in the tests (the local moto server): its DynamoDB usage table (the `usage_table`
fixture in conftest.py) and canned Cost Explorer pages. No tests here."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from decimal import Decimal as D

TABLE = "tax-agent-usage"


def items(table):
    scanned, request = [], {}
    while True:
        page = table.scan(**request)
        scanned += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(scanned, key=lambda i: (i["accountant_id"], i["timestamp"]))
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def cur_item(accountant, day, service, resource_type, amount):
    return {
        "accountant_id": accountant, "timestamp": f"2026-01-{day:02d}T00:00:00Z#cur#{service}", "month": "2026-01",
        "usage_date": f"2026-01-{day:02d}", "operation": "actual_cost", "service": service,
        "resource_type": resource_type, "source": "cur", "actual_cost": True, "amount": D(amount),
        "estimated_cost": D(0), "currency": "USD", "cost_metric": "unblended", "is_final": False,
    }


def group(tag_value, amount, metric="UnblendedCost"):
    return {"Keys": [f"accountant_id${tag_value}"], "Metrics": {metric: {"Amount": amount, "Unit": "USD"}}}


def day(date, groups, estimated=True):
    end = (dt.date.fromisoformat(date) + dt.timedelta(days=1)).isoformat()
    return {"TimePeriod": {"Start": date, "End": end}, "Total": {}, "Groups": groups, "Estimated": estimated}


def post_results(endpoint, *pages):
    request = urllib.request.Request(
        endpoint + "/moto-api/static/ce/cost-and-usage-results", method="POST",
        data=json.dumps({"results": list(pages)}).encode(), headers={"Content-Type": "application/json"})
    assert urllib.request.urlopen(request, timeout=10).status == 201
