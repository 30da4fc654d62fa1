-- Usage evidence from log lines (DESIGN.md, Inputs 4; driver names from docs/attribution-rules.md).
--
-- Input: the Arrow table `log_lines(line, line_no, log_group)`: every line of every exported log file, with the
-- log group it was read from or its export prefix names ('' when none, see usage_logs.py).
-- Parameters: $period_start, $period_end: the billing month [start, end), UTC.
-- Output: the temp tables `usage_events` (one row per driver quantity, with its owner), `log_problems` and
-- `hourly_usage`; then the query `evidence`.
-- The statements run in order; each starts with a `-- name:` line. Accepted shapes: see usage_logs.py.

-- name: fields_macros
-- The JSON fields a line can carry, read with one parse per document. A field of the wrong JSON type is NULL.
-- (json_transform keys are case-insensitive as a set, so `Operation` is read separately.)
CREATE OR REPLACE TEMP MACRO app_fields(doc) AS json_transform(doc, '{
    "accountant_id": "JSON", "user_id": "JSON",
    "requestId": "VARCHAR", "request_id": "VARCHAR", "aws_request_id": "VARCHAR",
    "function_request_id": "VARCHAR", "awsRequestId": "VARCHAR",
    "ConsumedCapacity": "JSON", "operation": "VARCHAR",
    "session_id": "VARCHAR", "sessionId": "VARCHAR", "session.id": "VARCHAR",
    "event": "VARCHAR", "event_type": "VARCHAR",
    "vcpu_hours": "VARCHAR", "gb_hours": "VARCHAR", "tool_type": "VARCHAR",
    "agent.runtime.vcpu.hours.used": "VARCHAR", "agent.runtime.memory.gb_hours.used": "VARCHAR"
}');
-- A whole line's document: the application fields plus Lambda platform and Bedrock invocation-log records, and
-- AgentCore Runtime's vended USAGE_LOGS records, which nest their fields: `{"event_timestamp": <epoch ms>,
-- "attributes": {"session.id": ..}, "metrics": {"agent.runtime.vcpu.hours.used": .., ...}}`, and the built-in
-- tools' (Code Interpreter, Browser), whose metrics are `codeInterpreter.vcpu.hours.used`, `browser.*`, ....
CREATE OR REPLACE TEMP MACRO line_fields(doc) AS json_transform(doc, '{
    "accountant_id": "JSON", "user_id": "JSON",
    "requestId": "VARCHAR", "request_id": "VARCHAR", "aws_request_id": "VARCHAR",
    "function_request_id": "VARCHAR", "awsRequestId": "VARCHAR",
    "ConsumedCapacity": "JSON", "operation": "VARCHAR",
    "session_id": "VARCHAR", "sessionId": "VARCHAR", "session.id": "VARCHAR",
    "event": "VARCHAR", "event_type": "VARCHAR",
    "vcpu_hours": "VARCHAR", "gb_hours": "VARCHAR", "tool_type": "VARCHAR",
    "agent.runtime.vcpu.hours.used": "VARCHAR", "agent.runtime.memory.gb_hours.used": "VARCHAR",
    "type": "VARCHAR", "time": "VARCHAR", "timestamp": "VARCHAR", "message": "JSON",
    "event_timestamp": "VARCHAR",
    "attributes": {"session.id": "VARCHAR"},
    "metrics": {"agent.runtime.vcpu.hours.used": "VARCHAR", "agent.runtime.memory.gb_hours.used": "VARCHAR",
                "codeInterpreter.vcpu.hours.used": "VARCHAR", "codeInterpreter.memory.gb_hours.used": "VARCHAR",
                "browser.vcpu.hours.used": "VARCHAR", "browser.memory.gb_hours.used": "VARCHAR"},
    "record": {"requestId": "VARCHAR", "metrics": {"billedDurationMs": "VARCHAR", "memorySizeMB": "VARCHAR"}},
    "schemaType": "VARCHAR", "modelId": "VARCHAR", "errorCode": "VARCHAR",
    "requestMetadata": {"accountant_id": "JSON"},
    "input": {"inputTokenCount": "VARCHAR", "cacheReadInputTokenCount": "VARCHAR",
              "cacheWriteInputTokenCount": "VARCHAR"},
    "output": {"outputTokenCount": "VARCHAR"}
}');
-- A tenant id as the JSON value a line carries (docs/attribution-rules.md, "Tenant ids"): a string, trimmed of
-- spaces; missing, null or empty after trimming -> NULL (no owner); a non-string value, a reserved word
-- (`unattributed`, `total`, any case) or a control character -> 'unattributed' (never a tenant; counted).
CREATE OR REPLACE TEMP MACRO tenant_text(text) AS CASE
    WHEN trim(text) = '' THEN NULL
    WHEN lower(trim(text)) IN ('unattributed', 'total') OR regexp_matches(text, '[\x00-\x1f\x7f]') THEN 'unattributed'
    ELSE trim(text)
END;
CREATE OR REPLACE TEMP MACRO tenant_id(value) AS CASE
    WHEN value IS NULL OR json_type(value) = 'NULL' THEN NULL
    WHEN json_type(value) <> 'VARCHAR' THEN 'unattributed'
    ELSE tenant_text(value ->> '$')
END;
CREATE OR REPLACE TEMP MACRO tenant_id_invalid(value) AS coalesce(tenant_id(value) = 'unattributed', false);
CREATE OR REPLACE TEMP MACRO utc(text) AS timezone('UTC', try_cast(text AS TIMESTAMPTZ));
-- Quantities keep 16 places until the final sum (GB-seconds need 13), then are rounded once to DECIMAL(38, 10).
CREATE OR REPLACE TEMP MACRO amount(text) AS try_cast(text AS DECIMAL(38, 16));
-- A REPORT's figures are usable when billed ms and memory MB lie in [0, 1e12) and [1, 1e9): generous bounds (Lambda
-- bills at most 900,000 ms at 10,240 MB) that keep every product exact in DECIMAL(38, 16); others are malformed.
CREATE OR REPLACE TEMP MACRO lambda_report_ok(billed_ms, memory_mb) AS
    billed_ms >= 0 AND billed_ms < 1000000000000 AND memory_mb >= 1 AND memory_mb < 1000000000;
-- A driver quantity a line gives (DynamoDB units, AgentCore hours, Bedrock tokens) is usable in [0, 1e12): usage
-- is never negative (it lowered its tenant's share), and far above any one call's (a few thousand units, a few
-- million tokens) it is no call's; the bound keeps every sum within DECIMAL(38, 16) (one near 1e22 overflowed the
-- month's sum and failed the run naming no file). A quantity present but not usable is counted
-- (`malformed_quantity`), never evidence.
CREATE OR REPLACE TEMP MACRO usage_amount(text) AS
    CASE WHEN amount(text) >= 0 AND amount(text) < 1000000000000 THEN amount(text) END;
CREATE OR REPLACE TEMP MACRO unusable(text) AS text IS NOT NULL AND usage_amount(text) IS NULL;
-- An S3 request the bucket owner is not billed for, by its access log record (S3 User Guide, "Billing for Amazon S3
-- error responses", ErrorCodeBilling): "Bucket owners aren't billed for HTTP 5XX server error responses"; the page's
-- table lists "specific error codes under HTTP 3XX and 4XX status codes that aren't billed" (whoever sent them);
-- and "For AccessDenied (HTTP 403 Forbidden), S3 doesn't charge the bucket owner when the request is initiated
-- outside of the bucket owner's individual AWS account or the bucket owner's AWS organization": the log decides
-- that only for an unauthenticated request (Requester `-`), from no account at all. A signed AccessDenied may come
-- from inside the organization: billed (docs/attribution-rules.md says what is left). The 3XX/4XX rule is AWS's
-- change "deployed" from May 13, 2024 (What's New, 2024-05 and 2024-08): earlier requests were billed.
CREATE OR REPLACE TEMP MACRO s3_request_unbilled(event_time, http_status, error_code, requester) AS
    starts_with(http_status, '5')
    OR (event_time >= TIMESTAMP '2024-05-13' AND regexp_matches(http_status, '^[34]\d\d$') AND (
        error_code IN (
            -- 301, 307
            'PermanentRedirect', 'PermanentRedirectControlError', 'TemporaryRedirect',
            -- 400
            'AuthorizationHeaderMalformed', 'AuthorizationQueryParametersError', 'ConnectionClosedByRequester',
            'DeviceNotActiveError', 'EndpointNotFound', 'ExpiredToken', 'IllegalLocationConstraintException',
            'InvalidArgument', 'InvalidBucketOwnerAWSAccountID', 'InvalidDigest', 'InvalidEncryptionAlgorithmError',
            'InvalidHostHeader', 'InvalidHttpMethod', 'InvalidRequest', 'InvalidSessionException', 'InvalidSignature',
            'InvalidSOAPRequest', 'InvalidStorageClass', 'InvalidTag', 'InvalidToken', 'InvalidURI', 'KeyTooLongError',
            'KMS.DisabledException', 'KMS.InvalidKeyUsageException', 'KMS.KMSInvalidStateException',
            'KMS.NotFoundException', 'LambdaInvalidResponse', 'LambdaInvocationFailed', 'MalformedACLError',
            'MalformedPOSTRequest', 'MalformedXML', 'MaxPostPreDataLengthExceededError', 'MetadataTooLarge',
            'MissingAttachment', 'MissingRequestBodyError', 'MissingSecurityHeader', 'NoLoggingStatusForKey',
            'NotDeviceOwnerError', 'ResponseInterrupted', 'RequestHeaderSectionTooLarge', 'TokenCodeInvalidError',
            'UnexpectedContent', 'UnsupportedArgument', 'UnsupportedSignature', 'UserKeyMustBeSpecified',
            'IncorrectEndpoint', 'ValidationError',
            -- 403 (AccessDenied is not in the table: see above)
            'RequestTimeTooSkewed', 'SignatureDoesNotMatch', 'NotSignedUp', 'InvalidSecurity', 'InvalidPayer',
            'InvalidAccessKeyId', 'AccountProblem', 'UnauthorizedAccessError', 'UnexpectedIPError',
            'MissingAuthenticationToken', 'LambdaPermissionError',
            -- 404 (NoSuchKey, NoSuchBucket are not in it: billed)
            'LambdaNotFound', 'NoSuchAsyncRequest', 'NoSuchObjectLockConfiguration', 'NoSuchUpload',
            'NoSuchWebsiteConfiguration', 'NoTransformationDefined', 'ObjectLockConfigurationNotFoundError',
            -- 405, 409, 411, 412, 416
            'MethodNotAllowed', 'BucketAlreadyExists', 'InvalidBucketState', 'OperationAborted', 'MissingContentLength',
            'RequestIsNotMultiPartContent', 'InvalidRange')
        OR (error_code = 'AccessDenied' AND requester = '-')));

-- name: log_events
-- One pass over every line: split off the timestamp, recognize the message by its content and pull out every
-- field a driver needs. Nothing is dropped: lines that give no evidence keep a `kind` so they can be counted.
CREATE OR REPLACE TEMP TABLE log_events AS
WITH framed AS (
    -- "<ISO-8601 UTC timestamp> <message>"; bare JSON records (delivered to S3) and S3 access logs have no prefix.
    SELECT
        line_no,
        CASE WHEN NOT starts_with(line, '{') THEN utc(split_part(line, ' ', 1)) END AS line_time,
        line,
        log_group
    FROM log_lines
    WHERE trim(line) <> ''
),
messages AS (
    SELECT
        line_no,
        line_time,
        CASE WHEN line_time IS NULL THEN line ELSE substr(line, strpos(line, ' ') + 1) END AS message,
        log_group
    FROM framed
),
recognized AS (
    SELECT
        line_no,
        line_time,
        message,
        CASE
            WHEN starts_with(message, '{') THEN 'json'
            WHEN starts_with(message, 'REPORT RequestId:') THEN 'lambda_report'
            -- Lambda text format: [LEVEL]\t<timestamp>\t<requestId>\t<message> (Python), or
            -- <timestamp>\t<requestId>\t<LEVEL>\t<message> (Node.js)
            WHEN regexp_matches(message, '^\[[A-Za-z]+\]\t') THEN 'text_app'
            WHEN regexp_matches(message, '^\d{4}-\d{2}-\d{2}T[^\t ]*\t[^\t]+\t[A-Za-z]+\t') THEN 'text_app'
            WHEN regexp_matches(message, '^(START|END) RequestId: |^(INIT_START|INIT_REPORT|RESTORE_START|RESTORE_REPORT|XRAY|EXTENSION|TELEMETRY)\b')
                THEN 'platform'
            -- S3 server access log: owner bucket [06/Feb/2019:00:00:38 +0000] ...
            WHEN regexp_matches(message, '^\S+ \S+ \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] ') THEN 's3_access'
            ELSE 'unrecognized'
        END AS kind,
        log_group
    FROM messages
),
documents AS (
    SELECT
        line_no,
        line_time,
        message,
        kind,
        CASE WHEN kind = 'text_app' AND starts_with(message, '[')
             THEN regexp_extract(message, '^\[[A-Za-z]+\]\t[^\t]*\t([^\t]*)\t(.*)$', ['request_id', 'payload'])
             WHEN kind = 'text_app'
             THEN regexp_extract(message, '^[^\t]*\t([^\t]*)\t[A-Za-z]+\t(.*)$', ['request_id', 'payload'])
        END AS text_app,
        log_group
    FROM recognized
),
json_documents AS (
    SELECT
        *,
        CASE WHEN kind = 'json' THEN message
             WHEN kind = 'text_app' AND starts_with(text_app.payload, '{') THEN text_app.payload
        END AS json_text
    FROM documents
),
decoded AS (
    SELECT
        *,
        try(line_fields(json_text)) AS a
    FROM json_documents
),
with_body AS (
    -- A Lambda JSON-format app line may carry the fields in `message` (an object, or a string holding one).
    SELECT
        *,
        CASE WHEN starts_with(a.message, '{') THEN try(app_fields(a.message))
             WHEN starts_with(a.message, '"{') THEN try(app_fields(a.message ->> '$'))
        END AS b
    FROM decoded
),
classified AS (
    SELECT
        *,
        CASE
            WHEN kind = 'text_app' AND json_text IS NULL THEN 'unrecognized'   -- a plain-text app message
            WHEN json_text IS NOT NULL AND a IS NULL THEN 'malformed_json'
            WHEN a.type = 'platform.report' THEN 'lambda_report'
            WHEN starts_with(a.type, 'platform.') THEN 'platform'
            WHEN a.schemaType = 'ModelInvocationLog' THEN 'bedrock_invocation'
            WHEN json_text IS NOT NULL THEN 'app'
            ELSE kind
        END AS line_kind,
        CASE WHEN kind = 's3_access'
             -- Bucket Owner, Bucket, [Time], Remote IP, Requester, Request ID, Operation, Key, "Request-URI",
             -- HTTP status, Error Code, ... (S3 User Guide, "Amazon S3 server access log format")
             THEN regexp_extract(message, '^\S+ (\S+) \[([^\]]+)\] \S+ (\S+) \S+ (\S+) (\S+) "([^"]*)" (\S+)(?: (\S+))?',
                                 ['bucket', 'time', 'requester', 'operation', 'key', 'request_uri', 'http_status',
                                  'error_code'])
        END AS access,
        -- REPORT RequestId: <id>\tDuration: 15.74 ms\tBilled Duration: 16 ms\tMemory Size: 128 MB\t...
        -- (string functions, not one regex: this runs on every invocation and is several times faster)
        CASE WHEN kind = 'lambda_report'
             THEN {'request_id': regexp_extract(message, '^REPORT RequestId: (\S+)', 1),
                   'billed_ms': split_part(split_part(message, 'Billed Duration: ', 2), ' ms', 1),
                   'memory_mb': split_part(split_part(message, 'Memory Size: ', 2), ' MB', 1)}
        END AS report,
        -- AgentCore vCPU- and GB-hours: the application's own names, the Runtime's, or a built-in tool's vended
        -- metrics (which also say the tool)
        coalesce(a.vcpu_hours, a."agent.runtime.vcpu.hours.used", a.metrics."agent.runtime.vcpu.hours.used",
                 a.metrics."codeInterpreter.vcpu.hours.used", a.metrics."browser.vcpu.hours.used",
                 b.vcpu_hours, b."agent.runtime.vcpu.hours.used") AS agent_vcpu_hours,
        coalesce(a.gb_hours, a."agent.runtime.memory.gb_hours.used", a.metrics."agent.runtime.memory.gb_hours.used",
                 a.metrics."codeInterpreter.memory.gb_hours.used", a.metrics."browser.memory.gb_hours.used",
                 b.gb_hours, b."agent.runtime.memory.gb_hours.used") AS agent_gb_hours,
        CASE WHEN coalesce(a.metrics."codeInterpreter.vcpu.hours.used", a.metrics."codeInterpreter.memory.gb_hours.used")
                  IS NOT NULL THEN 'codeinterpreter'
             WHEN coalesce(a.metrics."browser.vcpu.hours.used", a.metrics."browser.memory.gb_hours.used")
                  IS NOT NULL THEN 'browser'
        END AS agent_tool
    FROM with_body
)
SELECT
    line_no,
    line_kind AS kind,
    log_group,
    -- the Lambda function of a /aws/lambda/<function> log group
    regexp_extract(log_group, '^/aws/lambda/([^/]+)', 1) AS function,
    -- CloudWatch Logs bills each event's message bytes (+ 26 bytes per event); lines of a log group only
    CASE WHEN line_time IS NOT NULL THEN strlen(message) + 26 END AS log_bytes,
    CASE
        WHEN line_time IS NOT NULL THEN line_time
        WHEN kind = 's3_access' THEN timezone('UTC', try_strptime(access.time, '%d/%b/%Y:%H:%M:%S %z'))
        -- (a vended record delivered to S3 has only its `event_timestamp`, in epoch milliseconds)
        ELSE coalesce(utc(coalesce(a.time, a.timestamp)), try(epoch_ms(try_cast(a.event_timestamp AS BIGINT))))
    END AS event_time,
    CASE line_kind
        WHEN 'lambda_report' THEN coalesce(nullif(report.request_id, ''), a.record.requestId)
        -- START / END RequestId: <id> (text), or a platform record's requestId
        WHEN 'platform' THEN coalesce(nullif(regexp_extract(message, 'RequestId: ([^ \t]+)', 1), ''),
                                      a.record.requestId)
        -- (Java's JSON format names it `AWSRequestId`: json_transform matches keys case-sensitively, and one struct
        -- cannot hold both awsRequestId and AWSRequestId, so it is read apart)
        ELSE coalesce(nullif(text_app.request_id, ''), a.requestId, a.request_id, a.aws_request_id,
                      a.function_request_id, a.awsRequestId,
                      CASE WHEN a IS NOT NULL THEN json_text ->> '$.AWSRequestId' END, b.requestId,
                      b.request_id, b.aws_request_id, b.function_request_id, b.awsRequestId)
    END AS request_id,
    tenant_id(CASE line_kind
        WHEN 'bedrock_invocation' THEN a.requestMetadata.accountant_id
        ELSE coalesce(a.accountant_id, b.accountant_id)
    END) AS accountant_id,
    tenant_id(coalesce(a.user_id, b.user_id)) AS user_id,
    tenant_id_invalid(CASE line_kind WHEN 'bedrock_invocation' THEN a.requestMetadata.accountant_id
                                     ELSE coalesce(a.accountant_id, b.accountant_id) END)
      OR tenant_id_invalid(coalesce(a.user_id, b.user_id)) AS invalid_tenant_id,
    -- Lambda
    coalesce(amount(nullif(report.billed_ms, '')), amount(a.record.metrics.billedDurationMs)) AS billed_ms,
    coalesce(amount(nullif(report.memory_mb, '')), amount(a.record.metrics.memorySizeMB)) AS memory_mb,
    -- DynamoDB
    coalesce(a.ConsumedCapacity, b.ConsumedCapacity) AS consumed_capacity,
    CASE WHEN coalesce(a.ConsumedCapacity, b.ConsumedCapacity) IS NOT NULL
         THEN coalesce(a.operation, b.operation, json_text ->> '$.Operation', a.message ->> '$.Operation')
    END AS operation,
    -- AgentCore
    coalesce(a.session_id, a.sessionId, a."session.id", a.attributes."session.id", b.session_id, b.sessionId,
             b."session.id") AS session_id,
    regexp_replace(lower(coalesce(a.event, a.event_type, b.event, b.event_type)), '[^a-z]', '', 'g') AS agent_event,
    usage_amount(agent_vcpu_hours) AS vcpu_hours,
    -- AgentCore usage of a built-in tool (code interpreter, browser), not the runtime's: named by the line, or by
    -- the tool's vended metrics
    regexp_replace(lower(coalesce(a.tool_type, b.tool_type, agent_tool)), '[^a-z]', '', 'g') AS tool_type,
    usage_amount(agent_gb_hours) AS gb_hours,
    -- Bedrock model invocation log (`errorCode`: the call failed; see log_problems)
    a.modelId AS model_id,
    CASE WHEN line_kind = 'bedrock_invocation' THEN a.errorCode END AS bedrock_error,
    usage_amount(a.input.inputTokenCount) AS input_tokens,
    usage_amount(a.output.outputTokenCount) AS output_tokens,
    usage_amount(a.input.cacheReadInputTokenCount) AS cache_read_tokens,
    usage_amount(a.input.cacheWriteInputTokenCount) AS cache_write_tokens,
    -- a quantity present but not usable (usage_amount): counted in log_problems
    unusable(agent_vcpu_hours) OR unusable(agent_gb_hours)
      OR unusable(a.input.inputTokenCount) OR unusable(a.output.outputTokenCount)
      OR unusable(a.input.cacheReadInputTokenCount) OR unusable(a.input.cacheWriteInputTokenCount) AS bad_quantity,
    -- S3 server access log
    access.bucket AS s3_bucket,
    access.operation AS s3_operation,
    access.http_status AS s3_http_status,
    access.error_code AS s3_error_code,
    access.requester AS s3_requester,
    -- The object key, or for a LIST the prefix of the request. The log's Key field is URL-encoded twice for requests
    -- (`clients/Acme%2520Corp/`) but once for BATCH.DELETE.OBJECT and S3.EXPIRE.OBJECT (seen in production logs:
    -- Yelp Engineering, 2025-09; AWS documents only "URL-encoded"); the Request-URI is the request as sent, once.
    CASE WHEN access.key = '-' THEN url_decode(regexp_extract(access.request_uri, '[?&]prefix=([^& ]*)', 1))
         WHEN starts_with(access.operation, 'REST.') OR starts_with(access.operation, 'WEBSITE.')
             THEN url_decode(url_decode(access.key))
         ELSE url_decode(access.key)
    END AS s3_key
FROM classified;

-- name: request_owners
-- Who each Lambda request served: the accountant an application line names with that request id. Read over all
-- lines, not just the month's, so an invocation that straddles midnight of the 1st still finds its owner.
CREATE OR REPLACE TEMP TABLE request_owners AS
SELECT request_id, min(accountant_id) AS accountant_id, count(DISTINCT accountant_id) AS owners
FROM log_events
WHERE kind = 'app' AND request_id IS NOT NULL AND accountant_id IS NOT NULL
GROUP BY request_id;

-- name: agent_sessions
-- AgentCore sessions over all lines: the owner (accountant_id, else the agent's user_id) and the first start.
CREATE OR REPLACE TEMP TABLE agent_sessions AS
SELECT
    session_id,
    min(coalesce(accountant_id, user_id)) AS accountant_id,
    min(event_time) FILTER (WHERE agent_event IN ('sessionstart', 'sessionstarted')) AS started_at,
    arg_min(line_no, event_time) FILTER (WHERE agent_event IN ('sessionstart', 'sessionstarted')) AS start_line_no
FROM log_events
WHERE kind = 'app' AND session_id IS NOT NULL
GROUP BY session_id;

-- name: usage_events
-- One row per (line, driver) with its owner; `problem` says why a row is unattributed or questionable.
CREATE OR REPLACE TEMP TABLE usage_events AS
WITH month_events AS (
    SELECT * FROM log_events WHERE event_time >= $period_start AND event_time < $period_end
),
lambda_reports AS (
    SELECT
        e.line_no,
        e.event_time,
        coalesce(o.accountant_id, 'unattributed') AS accountant_id,
        e.function,
        e.billed_ms,
        e.memory_mb,
        CASE WHEN o.accountant_id IS NULL THEN 'report_without_owner'
             WHEN o.owners > 1 THEN 'report_with_conflicting_owners' END AS problem
    FROM month_events AS e
    LEFT JOIN request_owners AS o USING (request_id)
    WHERE e.kind = 'lambda_report' AND coalesce(lambda_report_ok(e.billed_ms, e.memory_mb), false)
),
dynamodb_capacity AS (
    -- ConsumedCapacity is one object (single-table calls) or a list (batch and transaction calls).
    SELECT
        e.line_no,
        e.event_time,
        e.operation,
        coalesce(e.accountant_id, o.accountant_id) AS owner,
        unnest(try(from_json(
            CASE WHEN starts_with(e.consumed_capacity, '[') THEN e.consumed_capacity
                 ELSE '[' || e.consumed_capacity || ']' END,
            '[{"TableName": "VARCHAR", "CapacityUnits": "VARCHAR",
               "ReadCapacityUnits": "VARCHAR", "WriteCapacityUnits": "VARCHAR"}]'))) AS capacity
    FROM month_events AS e
    LEFT JOIN request_owners AS o USING (request_id)
    WHERE e.kind = 'app' AND e.consumed_capacity IS NOT NULL
),
dynamodb_units AS (
    SELECT
        line_no,
        event_time,
        coalesce(owner, 'unattributed') AS accountant_id,
        -- A table named by ARN counts for the table's name, as the CUR resource id does.
        regexp_replace(coalesce(capacity.TableName, ''), '^arn:[^/]*:table/', '') AS scope,
        usage_amount(capacity.ReadCapacityUnits) AS read_units,
        usage_amount(capacity.WriteCapacityUnits) AS write_units,
        usage_amount(capacity.CapacityUnits) AS capacity_units,
        unusable(capacity.ReadCapacityUnits) OR unusable(capacity.WriteCapacityUnits)
          OR unusable(capacity.CapacityUnits) AS bad_units,
        coalesce(operation IN ('GetItem', 'Query', 'Scan', 'BatchGetItem', 'TransactGetItems'), false) AS is_read,
        coalesce(operation IN ('PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems'), false)
            AS is_write,
        owner IS NULL AS no_owner
    FROM dynamodb_capacity
),
agent_events AS (
    SELECT e.line_no, e.event_time, e.agent_event, e.session_id, e.vcpu_hours, e.gb_hours, e.tool_type,
           coalesce(e.accountant_id, e.user_id, s.accountant_id) AS owner
    FROM month_events AS e
    LEFT JOIN agent_sessions AS s USING (session_id)
    WHERE e.kind = 'app' AND e.session_id IS NOT NULL
),
s3_requests AS (
    SELECT
        line_no,
        event_time,
        s3_bucket AS scope,
        -- a key (or LIST prefix) outside clients/<id>/ is a request nobody owns: its own share, `unattributed`,
        -- never spread over the tenants (DESIGN: usage with no known owner); counted in log_problems too
        coalesce(tenant_text(regexp_extract(s3_key, '^clients/([^/]+)/', 1)), 'unattributed') AS accountant_id,
        CASE
            -- A website endpoint's request (always anonymous, GET or HEAD) is billed as a GET, its errors too: "For
            -- buckets configured with website hosting, applicable request and other charges will still apply when S3
            -- returns a custom error document or for custom redirects" (ErrorCodeBilling); a 5XX never is.
            WHEN starts_with(s3_operation, 'WEBSITE.')
                THEN CASE WHEN NOT starts_with(s3_http_status, '5') THEN 'tier2_requests' END
            -- server errors, the error codes AWS lists as unbilled, anonymous AccessDenied (the macro's comment)
            WHEN s3_request_unbilled(event_time, s3_http_status, s3_error_code, s3_requester) THEN NULL
            -- The request classes of S3's price list: "DELETE and CANCEL requests are free"; "PUT, COPY, POST, LIST
            -- requests" are Tier 1; "GET, SELECT, and all other requests" Tier 2 (the usage types: "Requests-Tier2:
            -- The number of GET and all other non-Tier1 requests"), a CORS preflight (REST.OPTIONS.PREFLIGHT) too.
            WHEN s3_operation LIKE 'REST.DELETE.%' THEN NULL
            -- A copy is one COPY request, logged twice: REST.COPY.OBJECT (or .PART) and its source's GET,
            -- REST.COPY.OBJECT_GET ("A copy operation involves a GET and a PUT. For that reason, we log two records",
            -- S3 server access log format). The GET record is never a second COPY: if AWS bills it at all (not
            -- documented), it is a GET of the source bucket.
            WHEN starts_with(s3_operation, 'REST.COPY.') AND ends_with(s3_operation, '_GET') THEN 'tier2_requests'
            WHEN s3_operation LIKE 'REST.SELECT.%' OR s3_operation LIKE 'REST.%.SELECT' THEN 'tier2_requests'
            WHEN s3_operation LIKE 'REST.PUT.%' OR s3_operation LIKE 'REST.COPY.%' OR s3_operation LIKE 'REST.POST.%'
              OR s3_operation IN ('REST.GET.BUCKET', 'REST.GET.BUCKETVERSIONS', 'REST.GET.UPLOADS', 'REST.GET.UPLOAD')
                THEN 'tier1_requests'
            WHEN starts_with(s3_operation, 'REST.') THEN 'tier2_requests'
        END AS driver  -- DELETE, lifecycle and other operations not of REST (free or billed otherwise), unbilled
                       -- errors: no driver
    FROM month_events
    WHERE kind = 's3_access'
)
-- Lambda: billed GB-seconds (billed ms / 1000 x memory MB / 1024, exact: 13 places) and invocations, for the
-- function the log group names (scope '' when it names none). Every factor is DECIMAL(38): 15 min at 10,240 MB is
-- 9,216,000,000 ms x MB, far beyond DECIMAL(18) (bounds: lambda_report_ok).
SELECT line_no, event_time, 'AWSLambda' AS service, 'gb_seconds' AS driver, function AS scope, accountant_id,
       CAST(CAST(billed_ms AS DECIMAL(38, 3)) * CAST(memory_mb AS DECIMAL(38, 0))
            * CAST('0.0000009765625' AS DECIMAL(38, 13)) AS DECIMAL(38, 16)) AS quantity,
       problem
FROM lambda_reports
UNION ALL
SELECT line_no, event_time, 'AWSLambda', 'requests', function, accountant_id, 1, problem
FROM lambda_reports
UNION ALL
-- DynamoDB: read and write units of the table named; bare CapacityUnits split by the operation.
SELECT line_no, event_time, 'AmazonDynamoDB', 'read_units', scope, accountant_id,
       CASE WHEN read_units IS NOT NULL OR write_units IS NOT NULL THEN coalesce(read_units, 0)
            WHEN is_read THEN capacity_units ELSE 0 END,
       -- (a line without owner says so in its write_units row)
       CASE WHEN bad_units THEN 'malformed_quantity' WHEN no_owner THEN 'missing_accountant_id' END
FROM dynamodb_units
UNION ALL
SELECT line_no, event_time, 'AmazonDynamoDB', 'write_units', scope, accountant_id,
       CASE WHEN read_units IS NOT NULL OR write_units IS NOT NULL THEN coalesce(write_units, 0)
            WHEN is_read THEN 0 ELSE capacity_units END,
       CASE WHEN no_owner THEN 'missing_accountant_id'
            WHEN read_units IS NULL AND write_units IS NULL AND capacity_units IS NOT NULL AND NOT is_read
                 AND NOT is_write THEN 'ambiguous_capacity_units'
            WHEN read_units IS NULL AND write_units IS NULL AND capacity_units IS NULL
                THEN 'malformed_consumed_capacity' END
FROM dynamodb_units
UNION ALL
-- AgentCore: one session per distinct session id (at its first start, which may be last month's),
-- one tool call per line, and the per-session vCPU-hours / GB-hours of usage lines.
SELECT start_line_no, started_at, 'AmazonBedrockAgentCore', 'sessions', '', coalesce(accountant_id, 'unattributed'), 1,
       CASE WHEN accountant_id IS NULL THEN 'session_without_owner' END
FROM agent_sessions
WHERE started_at >= $period_start AND started_at < $period_end
UNION ALL
SELECT line_no, event_time, 'AmazonBedrockAgentCore', 'tool_calls', '', coalesce(owner, 'unattributed'), 1,
       CASE WHEN owner IS NULL THEN 'session_without_owner' END
FROM agent_events
WHERE agent_event IN ('toolcall', 'toolcalled', 'toolinvocation', 'toolinvoked')
UNION ALL
SELECT line_no, event_time, 'AmazonBedrockAgentCore',
       CASE tool_type WHEN 'codeinterpreter' THEN 'code_interpreter_' || driver
                      WHEN 'browser' THEN 'browser_' || driver ELSE driver END,
       '', coalesce(owner, 'unattributed'), quantity,
       CASE WHEN owner IS NULL THEN 'session_without_owner' END
FROM agent_events
UNPIVOT (quantity FOR driver IN (vcpu_hours, gb_hours))
UNION ALL
-- AgentCore Memory: one short-term event per CreateEvent line, one long-term record per extracted record.
SELECT line_no, event_time, 'AmazonBedrockAgentCore',
       CASE WHEN agent_event IN ('memoryevent', 'createevent') THEN 'memory_events' ELSE 'memory_records' END,
       '', coalesce(owner, 'unattributed'), 1,
       CASE WHEN owner IS NULL THEN 'session_without_owner' END
FROM agent_events
WHERE agent_event IN ('memoryevent', 'createevent', 'memoryrecord', 'memoryrecordcreated')
UNION ALL
-- Bedrock: each token type of the invocation, for the model invoked.
SELECT line_no, event_time, 'AmazonBedrock', driver, coalesce(model_id, ''),
       coalesce(accountant_id, 'unattributed'), quantity,
       CASE WHEN accountant_id IS NULL THEN 'missing_accountant_id' END
FROM (SELECT * FROM month_events WHERE kind = 'bedrock_invocation')
UNPIVOT (quantity FOR driver IN (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens))
UNION ALL
-- CloudWatch Logs: each event's bytes in its log group, for the line's tenant, else its request's or session's.
SELECT e.line_no, e.event_time, 'AmazonCloudWatch', 'log_bytes', e.log_group,
       coalesce(e.accountant_id, o.accountant_id, s.accountant_id, e.user_id, 'unattributed'), e.log_bytes, NULL
FROM month_events AS e
LEFT JOIN request_owners AS o USING (request_id)
LEFT JOIN agent_sessions AS s USING (session_id)
WHERE e.log_bytes IS NOT NULL
UNION ALL
-- S3: billed requests of the bucket logged, for the client of their key (clients/<accountant_id>/) or unattributed.
SELECT line_no, event_time, 'AmazonS3', driver, scope, accountant_id, 1, NULL
FROM s3_requests
WHERE driver IS NOT NULL;

-- name: log_problems
-- Lines counted and skipped or left unattributed, one reason each (a line with several rows counts once).
-- Lines of another month are neither evidence nor problems; lines with no readable time are always counted.
CREATE OR REPLACE TEMP TABLE log_problems AS
WITH in_scope AS (
    SELECT * FROM log_events
    WHERE event_time IS NULL OR (event_time >= $period_start AND event_time < $period_end)
),
line_problems AS (
    SELECT line_no,
        CASE
            WHEN kind IN ('unrecognized', 'malformed_json') THEN
                CASE kind WHEN 'unrecognized' THEN 'unrecognized_line' ELSE kind END
            WHEN event_time IS NULL THEN 'missing_timestamp'
            WHEN kind = 'lambda_report' AND NOT coalesce(lambda_report_ok(billed_ms, memory_mb), false)
                THEN 'malformed_report'
            -- A failed call's record (`errorCode`) that still carries token counts: counted as given (AWS documents
            -- neither which failures are logged nor whether their tokens are billed), and said, to check the bill.
            WHEN kind = 'bedrock_invocation' THEN
                CASE WHEN bedrock_error IS NOT NULL AND coalesce(input_tokens, output_tokens, cache_read_tokens,
                                                                 cache_write_tokens) IS NOT NULL
                     THEN 'bedrock_failed_invocation_tokens' END
            WHEN kind = 's3_access' THEN
                CASE WHEN regexp_extract(s3_key, '^clients/([^/]+)/', 1) = '' AND s3_operation LIKE 'REST.%'
                     THEN 's3_request_outside_clients' END
            WHEN kind = 'app' THEN
                CASE
                    -- evidence: its own problems (owner, ambiguity) are in usage_events
                    WHEN consumed_capacity IS NOT NULL OR vcpu_hours IS NOT NULL OR gb_hours IS NOT NULL
                      OR (session_id IS NOT NULL AND agent_event IN ('memoryevent', 'createevent', 'memoryrecord',
                                                                   'memoryrecordcreated', 'sessionstart', 'sessionstarted', 'toolcall',
                                                                   'toolcalled', 'toolinvocation', 'toolinvoked'))
                        THEN NULL
                    WHEN accountant_id IS NOT NULL AND request_id IS NOT NULL THEN NULL   -- names a request's owner
                    WHEN coalesce(accountant_id, user_id) IS NOT NULL AND session_id IS NOT NULL THEN NULL  -- a session's
                    WHEN accountant_id IS NOT NULL THEN 'missing_request_id'
                    ELSE 'unrecognized_line'
                END
        END AS problem
    FROM in_scope
),
all_problems AS (
    SELECT line_no, problem FROM line_problems WHERE problem IS NOT NULL
    UNION ALL
    -- a tenant id that is never a tenant (non-string, reserved word, control character): its usage is unattributed
    SELECT line_no, 'invalid_accountant_id' FROM in_scope
    WHERE invalid_tenant_id
       OR (kind = 's3_access' AND tenant_text(regexp_extract(s3_key, '^clients/([^/]+)/', 1)) = 'unattributed')
    UNION ALL
    -- an AgentCore or Bedrock quantity that is no usage (usage_amount): dropped, counted
    SELECT line_no, 'malformed_quantity' FROM in_scope WHERE bad_quantity AND event_time IS NOT NULL
    UNION ALL
    -- ConsumedCapacity that is neither an object nor a list of them gave no rows at all
    SELECT line_no, 'malformed_consumed_capacity' FROM in_scope AS e
    WHERE kind = 'app' AND consumed_capacity IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM usage_events AS u WHERE u.line_no = e.line_no)
    UNION ALL
    SELECT DISTINCT line_no, problem FROM usage_events WHERE problem IS NOT NULL
)
SELECT problem, count(DISTINCT line_no) AS lines
FROM all_problems
GROUP BY problem;

-- name: hourly_usage
-- The log evidence summed per (usage hour, service, driver, scope, accountant) at full precision. On Spark each
-- executor runs this over its share of the lines, and the partial sums are added up before `evidence` rounds.
CREATE OR REPLACE TEMP TABLE hourly_usage AS
SELECT date_trunc('hour', event_time) AS usage_hour, service, driver, scope, accountant_id,
       CAST(sum(quantity) AS DECIMAL(38, 16)) AS quantity
FROM usage_events
GROUP BY ALL;

-- name: evidence
-- The month's evidence: the log-derived hourly rows plus S3 Inventory storage rows (the Arrow table
-- `inventory_usage`), summed per (usage hour, service, driver, scope, accountant) and rounded once to
-- DECIMAL(38, 10).
SELECT
    usage_hour,
    service,
    driver,
    scope,
    accountant_id,
    CAST(sum(quantity) AS DECIMAL(38, 10)) AS quantity
FROM (
    SELECT usage_hour, service, driver, scope, accountant_id, quantity
    FROM hourly_usage
    UNION ALL
    SELECT usage_hour, service, driver, scope, accountant_id, quantity
    FROM inventory_usage
)
GROUP BY ALL
HAVING sum(quantity) <> 0
ORDER BY usage_hour, service, driver, scope, accountant_id;
