"""The catalog: one file, validated, handed to the SQL as views and to the pricing file as default prices."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from billing_pipeline.catalog import load_catalog, parse_catalog
from billing_pipeline.pricing import parse_pricing

PACKAGED = json.loads(json.dumps({"tag_keys": load_catalog().tag_keys, "services": {
    "AWSLambda": {"resource_type": "lambda", "drivers": {"gb_seconds": {"unit": "GB-second", "unit_price": "1"}},
                  "usage_types": [{"contains": ["GB-Second"], "drivers": ["gb_seconds"]}]}}}))


def test_the_warehouse_views_hold_the_catalog(warehouse_con):
    rules = warehouse_con.execute(
        "SELECT usage_type_pattern, rule_order, driver, driver_order FROM driver_rules "
        "WHERE service = 'AmazonBedrockAgentCore' ORDER BY rule_order, driver_order").fetchall()
    assert rules[:2] == [("CodeInterpreter", 1, "code_interpreter_vcpu_hours", 1),
                         ("CodeInterpreter", 1, "code_interpreter_gb_hours", 2)]
    assert ("vCPU", 3, "sessions", 2) in rules
    assert rules[-1] == ("", 9999, "sessions", 1)
    assert warehouse_con.execute("SELECT resource_type FROM service_resource_types WHERE service = 'AmazonS3'"
                                 ).fetchall() == [("s3",)]
    assert warehouse_con.execute("SELECT unit, unit_price FROM driver_units WHERE driver = 'gb_seconds'"
                                 ).fetchall() == [("GB-second", D("0.0000166667"))]


def test_pricing_file_overrides_catalog_prices_and_rejects_unknown_drivers():
    pricing = parse_pricing('{"drivers": {"AWSLambda": {"requests": "0.5"}}}')
    assert pricing.driver_prices[("AWSLambda", "requests")] == D("0.5")
    assert pricing.driver_prices[("AWSLambda", "gb_seconds")] == D("0.0000166667")
    with pytest.raises(ValueError, match=r"prices.json: .*AWSLambda/sqs_messages"):
        parse_pricing('{"drivers": {"AWSLambda": {"sqs_messages": "1"}}}', "prices.json")


@pytest.mark.parametrize("change, problem", [
    (lambda s: s["AWSLambda"]["usage_types"][0].update(drivers=["nope"]), "unknown driver 'nope'"),
    (lambda s: s["AWSLambda"].update(scope_from_resource_id="function:[^:]+"), "needs one group"),
    (lambda s: s["AWSLambda"]["drivers"]["gb_seconds"].update(unit_price="-1"), "negative unit price"),
    (lambda s: s["AWSLambda"].pop("resource_type"), "not a valid catalog"),
    # a product code is written into the CUR reader's SQL: letters and digits only, one service each
    (lambda s: s["AWSLambda"].update(product_codes=["AWSLambda'); DROP"]), "letters and digits only"),
    (lambda s: s["AWSLambda"].update(product_codes=["AWSLambdaEdge", "AWSLambdaEdge"]), "named twice"),
    (lambda s: s["AWSLambda"].update(product_codes=["AWSLambda"]), "a service of its own"),
    # a scope name is searched for in every usage type and modelId: an empty one would make every line one model's
    (lambda s: s["AWSLambda"].update(scope_names=[{"scope": "m", "usage_type": "", "evidence": "m"}]),
     "scope_names entry 'm': usage_type must be non-empty text"),
    (lambda s: s["AWSLambda"].update(scope_names=[{"scope": "m", "usage_type": "M", "evidence": " "}]),
     "scope_names entry 'm': evidence must be non-empty text"),
    (lambda s: s["AWSLambda"].update(scope_names=[{"scope": "m", "usage_type": "M", "evidence": "m",
                                                    "product_name": ""}]), "product_name must be non-empty text"),
    (lambda s: s["AWSLambda"].update(scope_names=[{"scope": "m", "usage_type": 7, "evidence": "m"}]),
     "usage_type must be non-empty text"),
    (lambda s: s["AWSLambda"].update(scope_names=[{"scope": "m", "usage_type": "M", "evidence": "m"},
                                                   {"scope": "m", "usage_type": "N", "evidence": "n"}]),
     "scope 'm' named twice"),
    (lambda s: s["AWSLambda"].update(scope_names=[{"scope": "m", "usage_type": "M"}]), "not a valid catalog"),
])
def test_a_bad_catalog_names_the_file_and_the_problem(change, problem):
    document = json.loads(json.dumps(PACKAGED))
    change(document["services"])
    with pytest.raises(ValueError, match=f"my-catalog.json: .*{problem}"):
        parse_catalog(json.dumps(document), "my-catalog.json")


def test_a_model_not_sold_on_marketplace_has_no_product_name(warehouse_con):
    """`product_name` is optional: a model AWS sells only as Bedrock (Claude 4, Nova 2) has none, and its view row
    holds NULL, which names no Marketplace line."""
    catalog = load_catalog()
    names = {n.scope: n for n in catalog.services["AmazonBedrock"].scope_names}
    assert names["claude-sonnet-4-6"].product_name is None and names["nova-pro"].product_name == "Nova Pro"
    assert warehouse_con.execute("SELECT product_name_pattern FROM scope_names WHERE scope = 'claude-haiku-4-5'"
                                 ).fetchall() == [(None,)]
