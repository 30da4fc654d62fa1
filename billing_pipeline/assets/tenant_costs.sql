-- tenant_costs: the month's in-scope cost per tenant and day, from the fact-level `cost_allocations`.
-- Exact DECIMAL sums, no rounding: cents appear only in statements, by largest remainder per tenant-month.
SELECT
    billing_period,
    CAST(usage_hour AS DATE)                                                   AS usage_date,
    accountant_id,
    service,
    CASE service WHEN 'AWSLambda'              THEN 'lambda'
                 WHEN 'AmazonDynamoDB'         THEN 'dynamodb'
                 WHEN 'AmazonS3'               THEN 's3'
                 WHEN 'AmazonBedrockAgentCore' THEN 'agentcore'
                 WHEN 'AmazonBedrock'          THEN 'bedrock'
                 ELSE 'other' END                                              AS resource_type,
    usage_type,
    line_item_type,
    allocation,
    driver,
    -- the evidence quantity behind each split, summed over the day's facts
    sum(driver_quantity)                                                       AS driver_quantity,
    currency,
    $cost_metric                                                               AS cost_metric,
    sum(cost)                                                                  AS cost
FROM cost_allocations
GROUP BY ALL
