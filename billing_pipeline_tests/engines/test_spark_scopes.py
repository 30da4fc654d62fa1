"""The Bedrock model a usage type or a modelId names (named_scopes.sql, evidence_scope_names.sql) on Spark (local
mode) against DuckDB's, on the spellings AWS uses: the whole-Definitions test's generated months have no Bedrock
model lines, so Spark's reading of the name rules (its LOCATE, SUBSTRING and RLIKE for DuckDB's strpos, substr and
regexp_matches) is compared here."""

import pyarrow as pa
import pytest

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]

USAGE_TYPES = {
    "USE1-Claude4Sonnet-input-tokens-cross-region-global": "claude-sonnet-4",
    "USE1-Claude4.6Sonnet-cache-read-input-token-count": "claude-sonnet-4-6",
    "USE1-Claude3Haiku2-input-tokens": None,  # another model's name continues
    "USE1-gpt-oss-120b-output-tokens-priority": "gpt-oss-120b",
    "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard": "gpt-oss-120b",
    "USW2-anthropic.claude-sonnet-4-6-mantle-cache-write-tokens-standard": "claude-sonnet-4-6",
    "USW2-anthropic.claude-sonnet-4-5x-mantle-input-tokens-standard": None,
    "USW2-anthropic.claude-opus-4-8-mantle-input-tokens-standard": None,
    "USE1-MP:USE1_InputTokenCount-Units (Claude 3 Haiku (Amazon Bedrock Edition))": "claude-3-haiku",
}
MODEL_IDS = {
    "openai.gpt-oss-120b-1:0": "gpt-oss-120b",
    "openai.gpt-oss-120b": "gpt-oss-120b",
    "global.anthropic.claude-sonnet-4-6": "claude-sonnet-4-6",
    "anthropic.claude-sonnet-4-5-20250929-v1:0": "claude-sonnet-4-5",
    "us.anthropic.claude-opus-4-6-v1": "claude-opus-4-6",
    "anthropic.claude-opus-4-8": "(unnamed model)",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc": "(application inference profile)",
}


def test_model_names_on_spark_are_duckdbs(tmp_path, warehouse_con):
    from billing_pipeline.engines.duckdb_engine import DuckDBEngine
    from billing_pipeline.engines.spark_engine import SparkEngine, spark_session
    from billing_pipeline.resources.warehouse import warehouse_ddl
    from billing_pipeline.sql import read_sql

    relations = {
        "fact_usage_types": pa.table({"service": ["AmazonBedrock"] * len(USAGE_TYPES), "usage_type": list(USAGE_TYPES)}),
        "evidence_scopes": pa.table({"service": ["AmazonBedrock"] * len(MODEL_IDS), "scope": list(MODEL_IDS)}),
    }
    queries = {name: read_sql("billing_pipeline.assets", f"{name}.sql")
               for name in ("named_scopes", "evidence_scope_names")}
    expected = {
        "named_scopes": sorted(("AmazonBedrock", u, s) for u, s in USAGE_TYPES.items() if s),
        "evidence_scope_names": sorted(("AmazonBedrock", m, s) for m, s in MODEL_IDS.items()),
    }
    engines = [DuckDBEngine(warehouse_con),
               SparkEngine(spark_session("local[2]"), str(tmp_path / "spark-warehouse"), warehouse_ddl())]
    for engine in engines:
        for name, table in relations.items():
            engine.register(name, table)
        try:
            for name, sql in queries.items():
                assert sorted(tuple(r) for r in engine.execute(sql).fetchall()) == expected[name], (engine.name, name)
        finally:
            for name in relations:
                engine.unregister(name)
