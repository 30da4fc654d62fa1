"""The hand-built June of the nowcast tests (assets/test_month_to_date.py, and the same month on Spark in
engines/test_spark_nowcast.py): two Bedrock models, a shared function, a tenant's tagged worker with REPORT
evidence of its own, and an AgentCore runtime split by the runtime's usage logs."""

import datetime as dt
from pathlib import Path

import billing_pipeline
from billing_pipeline.pricing import parse_pricing

PRICING = parse_pricing((Path(billing_pipeline.__file__).parent / "pricing.json").read_text())

JUNE, JULY = dt.date(2026, 6, 1), dt.date(2026, 7, 1)


def build_june(con):
    """June 2026, covered June 1-2, evidence through 06:00 on the 3rd. Each hour: Claude 3.5 Sonnet input tokens
    cost 0.003 (a 600 tokens, b 400: 0.000003 a token), Claude 3 Haiku's 0.00025 (b 1000: 0.00000025 a token), the
    shared function 0.0001 (a 3 GB-s, b 2: 0.00002 a GB-s), and a's own tagged worker function 0.0002 an hour on
    the 1st (10 GB-s an hour) and 0.0004 on the 2nd (20 GB-s), then 5 GB-s an hour on the 3rd: its REPORT lines are
    logged, so the hours after coverage are its own evidence at its own unit cost (0.0144 / 720 GB-s = 0.00002), not
    its run rate (0.0003 an hour). The AgentCore runtime costs 0.0895 an hour, half a vCPU-hour each for a and b
    by the runtime's usage logs, which is what splits it, not a's one session start an hour."""
    con.execute("""
        INSERT INTO hourly_cost_facts BY NAME
        SELECT DATE '2026-06-01' AS billing_period, h AS usage_hour, 1 AS span_hours, v.service, v.usage_type,
               v.resource_id, v.accountant_id, 'tax-demo' AS application, 'USD' AS currency, true AS in_scope,
               CAST(CASE WHEN h < TIMESTAMP '2026-06-02' THEN v.day1 ELSE v.day2 END AS DECIMAL(38, 10)) AS unblended_cost,
               CAST(CASE WHEN h < TIMESTAMP '2026-06-02' THEN v.day1 ELSE v.day2 END AS DECIMAL(38, 10)) AS amortized_cost,
               1 AS line_items, 'Usage' AS line_item_type
        FROM range(TIMESTAMP '2026-06-01', TIMESTAMP '2026-06-03', INTERVAL 1 HOUR) r(h),
             (VALUES ('AmazonBedrock', 'USE1-Claude3.5Sonnet-input-tokens', '', NULL, 0.003, 0.003),
                     ('AmazonBedrock', 'USE1-Claude3Haiku-input-tokens', '', NULL, 0.00025, 0.00025),
                     ('AWSLambda', 'USE1-Lambda-GB-Second', 'arn:aws:lambda:us-east-1:1:function:shared', NULL,
                      0.0001, 0.0001),
                     ('AWSLambda', 'USE1-Lambda-GB-Second', 'arn:aws:lambda:us-east-1:1:function:worker-a', 'a',
                      0.0002, 0.0004),
                     ('AmazonBedrockAgentCore', 'USE1-AgentCoreRuntime-vCPU-Hours', 'arn:runtime', NULL, 0.0895,
                      0.0895)) v(service, usage_type, resource_id, accountant_id, day1, day2)""")
    con.execute("""
        INSERT INTO usage_shares
        SELECT DATE '2026-06-01', h, v.service, v.driver, v.scope, v.t,
               CASE WHEN v.t = 'a' AND v.scope = 'worker-a'
                    THEN CASE WHEN h < TIMESTAMP '2026-06-02' THEN 10 WHEN h < TIMESTAMP '2026-06-03' THEN 20 ELSE 5 END
                    ELSE v.q END, 1, 1
        FROM range(TIMESTAMP '2026-06-01', TIMESTAMP '2026-06-03 06:00', INTERVAL 1 HOUR) r(h),
             (VALUES ('AmazonBedrock', 'input_tokens', 'anthropic.claude-3-5-sonnet-20240620-v1:0', 'a', 600),
                     ('AmazonBedrock', 'input_tokens', 'anthropic.claude-3-5-sonnet-20240620-v1:0', 'b', 400),
                     ('AmazonBedrock', 'input_tokens', 'anthropic.claude-3-haiku-20240307-v1:0', 'b', 1000),
                     ('AWSLambda', 'gb_seconds', 'shared', 'a', 3),
                     ('AWSLambda', 'gb_seconds', 'shared', 'b', 2),
                     ('AWSLambda', 'gb_seconds', 'worker-a', 'a', 0),
                     ('AmazonBedrockAgentCore', 'vcpu_hours', '', 'a', 0.5),
                     ('AmazonBedrockAgentCore', 'vcpu_hours', '', 'b', 0.5),
                     ('AmazonBedrockAgentCore', 'sessions', '', 'a', 1)) v(service, driver, scope, t, q)""")
    con.execute("""
        INSERT INTO tenant_costs BY NAME
        SELECT DATE '2026-06-01' AS billing_period, d AS usage_date, t AS accountant_id, s AS service,
               rt AS resource_type, ut AS usage_type, 'Usage' AS line_item_type, al AS allocation, dr AS driver,
               'USD' AS currency, 'unblended' AS cost_metric, CAST(c AS DECIMAL(38, 10)) AS cost
        FROM (SELECT * FROM (VALUES (DATE '2026-06-01'), (DATE '2026-06-02')) days(d),
              (VALUES ('a', 'AmazonBedrock', 'bedrock', 'USE1-Claude3.5Sonnet-input-tokens', 'shared_hour',
                       'input_tokens', 0.0432),
                      ('b', 'AmazonBedrock', 'bedrock', 'USE1-Claude3.5Sonnet-input-tokens', 'shared_hour',
                       'input_tokens', 0.0288),
                      ('b', 'AmazonBedrock', 'bedrock', 'USE1-Claude3Haiku-input-tokens', 'shared_hour',
                       'input_tokens', 0.006),
                      ('a', 'AWSLambda', 'lambda', 'USE1-Lambda-GB-Second', 'shared_hour', 'gb_seconds', 0.00144),
                      ('b', 'AWSLambda', 'lambda', 'USE1-Lambda-GB-Second', 'shared_hour', 'gb_seconds', 0.00096),
                      ('a', 'AmazonBedrockAgentCore', 'agentcore', 'USE1-AgentCoreRuntime-vCPU-Hours', 'shared_hour',
                       'vcpu_hours', 1.074),
                      ('b', 'AmazonBedrockAgentCore', 'agentcore', 'USE1-AgentCoreRuntime-vCPU-Hours', 'shared_hour',
                       'vcpu_hours', 1.074))
                   v(t, s, rt, ut, al, dr, c)
              UNION ALL
              VALUES (DATE '2026-06-01', 'a', 'AWSLambda', 'lambda', 'USE1-Lambda-GB-Second', 'direct', NULL, 0.0048),
                     (DATE '2026-06-02', 'a', 'AWSLambda', 'lambda', 'USE1-Lambda-GB-Second', 'direct', NULL, 0.0096))
             x(d, t, s, rt, ut, al, dr, c)""")
