"""Properties of the synthesized resources that matter: runtime, keys, stream, retries, IAM."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Capture, Match

from tests.infra.infra_stacks import REPO_ROOT, Synthesized
from tests.infra.infra_template import function_by_handler, properties, resources, role_statements
from userstatus.keys import CONNECTIONS, CONNECTIONS_BY_ID_INDEX, MESSAGES, PUBLISH_KEYS
from userstatus.routes import BROADCAST_HANDLER, FANOUT_HANDLER, HTTP_HANDLER, WEBSOCKET_HANDLER
from userstatus_stack.functions import LAMBDA_SOURCE_DIR, RUNTIME

HANDLERS = {HTTP_HANDLER, WEBSOCKET_HANDLER, BROADCAST_HANDLER, FANOUT_HANDLER}
DELETION_POLICY = {RemovalPolicy.DESTROY: "Delete", RemovalPolicy.RETAIN: "Retain"}
RETENTION_IN_DAYS = {logs.RetentionDays.ONE_WEEK: 7, logs.RetentionDays.THREE_MONTHS: 90}


def test_every_function_is_python_3_13_on_arm64_with_json_logs(synthesized: Synthesized) -> None:
    functions = resources(synthesized.json, "AWS::Lambda::Function")
    assert {f["Properties"]["Handler"] for f in functions.values()} == HANDLERS
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert "Layers" not in props


def test_functions_share_one_code_asset(synthesized: Synthesized) -> None:
    codes = {
        json.dumps(f["Properties"]["Code"], sort_keys=True)
        for f in resources(synthesized.json, "AWS::Lambda::Function").values()
    }
    assert len(codes) == 1
    assert json.loads(codes.pop())["S3Key"].endswith(".zip")


def test_the_code_asset_is_the_runtime_package_modules_only(synthesized: Synthesized) -> None:
    # lambda_src/ also holds what installs it editable (pyproject.toml, py.typed): not shipped
    assembly = Path(synthesized.app.synth().directory)
    [asset] = [d for d in assembly.glob("asset.*") if (d / "userstatus").is_dir()]
    shipped = sorted(str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file())
    modules = sorted(p.relative_to(LAMBDA_SOURCE_DIR) for p in LAMBDA_SOURCE_DIR.rglob("*.py"))
    assert shipped == [str(m) for m in modules]
    assert all(m.parts[0] == "userstatus" for m in modules)


def test_each_function_logs_to_its_own_log_group_with_stage_retention(
    synthesized: Synthesized,
) -> None:
    log_groups = resources(synthesized.json, "AWS::Logs::LogGroup")
    functions = resources(synthesized.json, "AWS::Lambda::Function").values()
    own_groups = {f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in functions}
    assert len(own_groups) == len(functions)
    expected_days = RETENTION_IN_DAYS[synthesized.config.log_retention]
    expected_policy = DELETION_POLICY[synthesized.config.removal_policy]
    for logical_id, log_group in log_groups.items():
        assert log_group["Properties"]["RetentionInDays"] == expected_days, logical_id
        assert log_group["DeletionPolicy"] == expected_policy, logical_id
    assert own_groups <= set(log_groups)


def test_function_environment(synthesized: Synthesized) -> None:
    config = synthesized.config
    messages = synthesized.logical_id(synthesized.stack.storage.messages_table)
    connections = synthesized.logical_id(synthesized.stack.storage.connections_table)
    publish_keys = synthesized.logical_id(synthesized.stack.storage.publish_keys_table)
    common = {
        "STAGE": config.stage,
        "MESSAGES_TABLE": {"Ref": messages},
        "CONNECTIONS_TABLE": {"Ref": connections},
        "PUBLISH_AUTH": "open",
        "PUBLISH_KEYS_TABLE": {"Ref": publish_keys},
        "MESSAGE_RETENTION_DAYS": str(config.message_retention_days),
        "CORS_ALLOWED_ORIGINS": ",".join(config.cors_allowed_origins),
    }
    for handler in (HTTP_HANDLER, WEBSOCKET_HANDLER):
        synthesized.template.has_resource_properties(
            "AWS::Lambda::Function",
            {"Handler": handler, "Environment": {"Variables": Match.exact(common)}},
        )
    endpoint = Capture()
    synthesized.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": BROADCAST_HANDLER,
            "Environment": {
                "Variables": {
                    **common,
                    "BROADCAST_CONCURRENCY": str(config.broadcast_concurrency),
                    "WEBSOCKET_MANAGEMENT_ENDPOINT": endpoint,
                }
            },
        },
    )
    websocket_api = synthesized.logical_id(synthesized.stack.websocket_api.api)
    separator, parts = endpoint.as_object()["Fn::Join"]
    assert separator == ""
    assert parts[0] == "https://"
    assert parts[1] == {"Ref": websocket_api}
    assert parts[2] == ".execute-api."
    assert parts[-1] == f"/{config.stage}"


def test_memory_and_timeouts_follow_the_stage(synthesized: Synthesized) -> None:
    config = synthesized.config
    for handler, memory, timeout in (
        (HTTP_HANDLER, config.api_memory_mb, config.api_timeout_seconds),
        (WEBSOCKET_HANDLER, config.api_memory_mb, config.api_timeout_seconds),
        (BROADCAST_HANDLER, config.broadcast_memory_mb, config.broadcast_timeout_seconds),
    ):
        synthesized.template.has_resource_properties(
            "AWS::Lambda::Function",
            {"Handler": handler, "MemorySize": memory, "Timeout": timeout},
        )


def test_messages_table_keys_ttl_stream_and_encryption(synthesized: Synthesized) -> None:
    synthesized.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": {
                "KeySchema": [
                    {"AttributeName": MESSAGES.partition_key.name, "KeyType": "HASH"},
                    {"AttributeName": MESSAGES.sort_key.name, "KeyType": "RANGE"},
                ],
                "TimeToLiveSpecification": {
                    "AttributeName": MESSAGES.ttl_attribute,
                    "Enabled": True,
                },
                "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
                "BillingMode": "PAY_PER_REQUEST",
                "SSESpecification": {"SSEEnabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            },
            "DeletionPolicy": DELETION_POLICY[synthesized.config.removal_policy],
        },
    )


def test_connections_table_keys_index_and_ttl(synthesized: Synthesized) -> None:
    (index,) = CONNECTIONS.indexes
    assert index.name == CONNECTIONS_BY_ID_INDEX
    synthesized.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": {
                "KeySchema": [
                    {"AttributeName": CONNECTIONS.partition_key.name, "KeyType": "HASH"},
                    {"AttributeName": CONNECTIONS.sort_key.name, "KeyType": "RANGE"},
                ],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": index.name,
                        "KeySchema": [
                            {"AttributeName": index.partition_key.name, "KeyType": "HASH"}
                        ],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                ],
                "TimeToLiveSpecification": {
                    "AttributeName": CONNECTIONS.ttl_attribute,
                    "Enabled": True,
                },
                "StreamSpecification": Match.absent(),
                "BillingMode": "PAY_PER_REQUEST",
                "SSESpecification": {"SSEEnabled": True},
            },
            "DeletionPolicy": DELETION_POLICY[synthesized.config.removal_policy],
        },
    )


def test_publish_keys_table_keys_recovery_and_no_ttl(synthesized: Synthesized) -> None:
    synthesized.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": {
                "KeySchema": [
                    {"AttributeName": PUBLISH_KEYS.partition_key.name, "KeyType": "HASH"},
                    {"AttributeName": PUBLISH_KEYS.sort_key.name, "KeyType": "RANGE"},
                ],
                "TimeToLiveSpecification": Match.absent(),
                "StreamSpecification": Match.absent(),
                "GlobalSecondaryIndexes": Match.absent(),
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "BillingMode": "PAY_PER_REQUEST",
                "SSESpecification": {"SSEEnabled": True},
            },
            "DeletionPolicy": DELETION_POLICY[synthesized.config.removal_policy],
        },
    )


def test_broadcaster_reads_inserts_only_with_bounded_retries(synthesized: Synthesized) -> None:
    config = synthesized.config
    stack = synthesized.stack
    destination = Capture()
    synthesized.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {
                "Fn::GetAtt": [synthesized.logical_id(stack.storage.messages_table), "StreamArn"]
            },
            "FunctionName": {"Ref": synthesized.logical_id(stack.broadcaster.function)},
            "FilterCriteria": {
                "Filters": [
                    {"Pattern": json.dumps({"eventName": ["INSERT"]}, separators=(",", ":"))}
                ]
            },
            "StartingPosition": "LATEST",
            "BatchSize": config.broadcast_batch_size,
            "ParallelizationFactor": config.broadcast_parallelization_factor,
            "MaximumBatchingWindowInSeconds": config.broadcast_batching_window_seconds,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": config.broadcast_retry_attempts,
            "MaximumRecordAgeInSeconds": config.broadcast_max_record_age_seconds,
            "DestinationConfig": {"OnFailure": {"Destination": destination}},
        },
    )
    queue_id = synthesized.logical_id(stack.broadcaster.failure_queue)
    assert destination.as_object() == {"Fn::GetAtt": [queue_id, "Arn"]}


def test_failure_queue_is_encrypted_and_ssl_only(synthesized: Synthesized) -> None:
    queue_id = synthesized.logical_id(synthesized.stack.broadcaster.failure_queue)
    assert properties(synthesized.json, queue_id)["SqsManagedSseEnabled"] is True
    synthesized.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_http_api_cors_and_throttled_default_stage(synthesized: Synthesized) -> None:
    config = synthesized.config
    synthesized.template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {
            "ProtocolType": "HTTP",
            "CorsConfiguration": {
                "AllowOrigins": list(config.cors_allowed_origins),
                "AllowMethods": ["GET", "OPTIONS", "POST"],
                # Browsers may read the truncation header only if API Gateway exposes it.
                "ExposeHeaders": ["X-Userstatus-Truncated"],
            },
        },
    )
    access_format = Capture()
    synthesized.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "AutoDeploy": True,
            "DefaultRouteSettings": {
                "ThrottlingRateLimit": config.throttle_rate_limit,
                "ThrottlingBurstLimit": config.throttle_burst_limit,
            },
            "AccessLogSettings": {
                "DestinationArn": {
                    "Fn::GetAtt": [
                        synthesized.logical_id(synthesized.stack.http_api.access_logs),
                        "Arn",
                    ]
                },
                "Format": access_format,
            },
        },
    )
    assert json.loads(access_format.as_string())["requestId"] == "$context.requestId"


def test_websocket_stage_is_named_after_the_stage_and_throttled(
    synthesized: Synthesized,
) -> None:
    config = synthesized.config
    access_format = Capture()
    synthesized.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": config.stage,
            "AutoDeploy": True,
            "DefaultRouteSettings": {
                "ThrottlingRateLimit": config.throttle_rate_limit,
                "ThrottlingBurstLimit": config.throttle_burst_limit,
            },
            "AccessLogSettings": {
                "DestinationArn": {
                    "Fn::GetAtt": [
                        synthesized.logical_id(synthesized.stack.websocket_api.access_logs),
                        "Arn",
                    ]
                },
                "Format": access_format,
            },
        },
    )
    assert json.loads(access_format.as_string())["connectionId"] == "$context.connectionId"


def _names(synthesized: Synthesized, function_id: str) -> dict[str, str]:
    stack = synthesized.stack
    log_group = properties(synthesized.json, function_id)["LoggingConfig"]["LogGroup"]["Ref"]
    return {
        synthesized.logical_id(stack.storage.messages_table): "messages",
        synthesized.logical_id(stack.storage.connections_table): "connections",
        synthesized.logical_id(stack.storage.publish_keys_table): "publish_keys",
        synthesized.logical_id(stack.broadcaster.failure_queue): "failure_queue",
        synthesized.logical_id(stack.websocket_api.api): "websocket_api",
        synthesized.logical_id(stack.broadcaster.fanout_function): "fanout_function",
        log_group: "own_log_group",
    }


LOGS = (("logs:CreateLogStream", "logs:PutLogEvents"), ("own_log_group.Arn",))
CONNECTIONS_TABLE = ("connections.Arn",)


def _statements(
    synthesized: Synthesized, handler: str
) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
    function_id = function_by_handler(synthesized.json)[handler]
    return role_statements(synthesized.json, function_id, _names(synthesized, function_id))


def test_http_function_iam_statements(synthesized: Synthesized) -> None:
    assert _statements(synthesized, HTTP_HANDLER) == {
        LOGS,
        (("dynamodb:PutItem", "dynamodb:Query"), ("messages.Arn",)),
        (("dynamodb:Query",), CONNECTIONS_TABLE),
    }


def test_websocket_function_iam_statements(synthesized: Synthesized) -> None:
    assert _statements(synthesized, WEBSOCKET_HANDLER) == {
        LOGS,
        (("dynamodb:DeleteItem", "dynamodb:PutItem"), CONNECTIONS_TABLE),
        (("dynamodb:Query",), (f"connections.Arn/index/{CONNECTIONS_BY_ID_INDEX}",)),
        (("dynamodb:PutItem",), ("messages.Arn",)),
    }


def test_checking_keys_grants_one_read_of_the_keys_table(keys_variant: Synthesized) -> None:
    read_keys = (("dynamodb:GetItem",), ("publish_keys.Arn",))
    assert read_keys in _statements(keys_variant, HTTP_HANDLER)
    assert read_keys in _statements(keys_variant, WEBSOCKET_HANDLER)
    assert read_keys not in _statements(keys_variant, BROADCAST_HANDLER)
    keys_variant.template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": HTTP_HANDLER, "Environment": {"Variables": {"PUBLISH_AUTH": "keys"}}},
    )


def test_broadcast_function_iam_statements(synthesized: Synthesized) -> None:
    stage = synthesized.config.stage
    assert _statements(synthesized, BROADCAST_HANDLER) == {
        LOGS,
        (("dynamodb:DeleteItem", "dynamodb:Query"), CONNECTIONS_TABLE),
        (
            ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"),
            ("messages.StreamArn",),
        ),
        (("dynamodb:ListStreams",), ("*",)),
        (("sqs:SendMessage",), ("failure_queue.Arn",)),
        (("lambda:InvokeFunction",), ("fanout_function.Arn",)),
        _manage_connections(stage),
    }


def test_fanout_function_only_posts(synthesized: Synthesized) -> None:
    assert _statements(synthesized, FANOUT_HANDLER) == {
        LOGS,
        _manage_connections(synthesized.config.stage),
    }


def test_broadcaster_splits_big_sites_with_the_stage_chunk_and_the_fanout_function(
    synthesized: Synthesized,
) -> None:
    functions = resources(synthesized.json, "AWS::Lambda::Function")
    by_handler = function_by_handler(synthesized.json)
    variables = functions[by_handler[BROADCAST_HANDLER]]["Properties"]["Environment"]["Variables"]
    assert variables["FANOUT_FUNCTION_NAME"] == {"Ref": by_handler[FANOUT_HANDLER]}
    assert variables["FANOUT_CHUNK_CONNECTIONS"] == str(synthesized.config.fanout_chunk_connections)
    fanout = functions[by_handler[FANOUT_HANDLER]]["Properties"]
    assert fanout["MemorySize"] == synthesized.config.fanout_memory_mb
    # The broadcaster waits for its fan-out invocations: the function may take as long.
    assert fanout["Timeout"] == synthesized.config.broadcast_timeout_seconds
    # No event source: only the broadcaster invokes it.
    assert not [
        m
        for m in resources(synthesized.json, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": by_handler[FANOUT_HANDLER]}
    ]


def _manage_connections(stage: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (
        ("execute-api:ManageConnections",),
        (
            "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
            f"websocket_api/{stage}/*/@connections/*",
        ),
    )


def test_roles_carry_no_managed_policies(synthesized: Synthesized) -> None:
    roles = resources(synthesized.json, "AWS::IAM::Role")
    assert len(roles) == len(HANDLERS)
    for role in roles.values():
        assert "ManagedPolicyArns" not in role["Properties"]
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
            {
                "Action": "sts:AssumeRole",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
            }
        ]


def test_alarms_cover_failures_errors_throttles_and_5xx(synthesized: Synthesized) -> None:
    alarms = resources(synthesized.json, "AWS::CloudWatch::Alarm").values()
    metrics = sorted((a["Properties"]["Namespace"], a["Properties"]["MetricName"]) for a in alarms)
    assert metrics == sorted(
        [
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
            *[("AWS/Lambda", "Errors")] * 4,
            *[("AWS/Lambda", "Throttles")] * 4,
            ("AWS/Lambda", "IteratorAge"),
            ("AWS/ApiGateway", "5xx"),
            ("AWS/ApiGateway", "IntegrationError"),
            ("AWS/ApiGateway", "ExecutionError"),
        ]
    )
    queue_id = synthesized.logical_id(synthesized.stack.broadcaster.failure_queue)
    synthesized.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}],
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    )
    # Every alarm notifies the stage's topic: created by the stack, encrypted in transit, with
    # the stage's address subscribed when it gives one (prod must).
    topic_id = synthesized.logical_id(synthesized.stack.monitoring.topic)
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    subs = resources(synthesized.json, "AWS::SNS::Subscription").values()
    if synthesized.config.alarm_email is None:
        assert not subs
    else:
        endpoints = [(s["Properties"]["Protocol"], s["Properties"]["Endpoint"]) for s in subs]
        assert endpoints == [("email", synthesized.config.alarm_email)]
    policies = resources(synthesized.json, "AWS::SNS::TopicPolicy").values()
    conditions = [p["Properties"]["PolicyDocument"]["Statement"][0]["Condition"] for p in policies]
    assert conditions == [{"Bool": {"aws:SecureTransport": "false"}}]


def test_outputs(synthesized: Synthesized) -> None:
    outputs = synthesized.json["Outputs"]
    assert set(outputs) == {
        "HttpApiUrl",
        "WebSocketUrl",
        "MessagesTableName",
        "ConnectionsTableName",
        "PublishKeysTableName",
        "AlarmTopicArn",
    }
    stack = synthesized.stack
    assert outputs["AlarmTopicArn"]["Value"] == {
        "Ref": synthesized.logical_id(stack.monitoring.topic)
    }
    assert outputs["MessagesTableName"]["Value"] == {
        "Ref": synthesized.logical_id(stack.storage.messages_table)
    }
    assert outputs["ConnectionsTableName"]["Value"] == {
        "Ref": synthesized.logical_id(stack.storage.connections_table)
    }
    assert outputs["PublishKeysTableName"]["Value"] == {
        "Ref": synthesized.logical_id(stack.storage.publish_keys_table)
    }
    assert outputs["WebSocketUrl"]["Value"]["Fn::Join"][1][0] == "wss://"
    assert outputs["HttpApiUrl"]["Value"]["Fn::Join"][1][0] == "https://"


def test_the_lambda_code_is_tested_on_the_functions_python() -> None:
    # The Makefile runs the unit tests (and ministack's workers) on LAMBDA_RUNTIME.
    makefile = (REPO_ROOT / "Makefile").read_text()
    [declared] = re.findall(r"^LAMBDA_RUNTIME := (\S+)$", makefile, re.MULTILINE)
    assert declared == RUNTIME.name
