"""Infrastructure tests: assertions on template.yaml (and the sample events that target it)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devkit.stack import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
EVENTS_DIR = REPO_ROOT / "events"

CONTRACT_VARIABLES = {"CC_API_BASE_URL", "CC_TOKEN_URL", "CC_TOKEN_SECRET_ID"}
PROJECT_VARIABLES = {"ACTIVITY_TABLE_NAME", "RESULT_TOPIC_ARN"}
FUNCTION_TYPE = "AWS::Serverless::Function"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}


def properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


def parameter_default(template: dict[str, Any], name: str) -> Any:
    return template["Parameters"][name]["Default"]


def function_setting(template: dict[str, Any], logical_id: str, key: str) -> Any:
    """A function property, falling back to Globals.Function as SAM does."""
    own = properties(template, logical_id)
    return own[key] if key in own else template["Globals"]["Function"][key]


def function_variables(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    global_variables = template["Globals"]["Function"].get("Environment", {}).get("Variables", {})
    own_variables = properties(template, logical_id).get("Environment", {}).get("Variables", {})
    return {**global_variables, **own_variables}


def intake_sqs_event(template: dict[str, Any]) -> dict[str, Any]:
    events = properties(template, "IntakeFunction")["Events"]
    (event,) = [e for e in events.values() if e["Type"] == "SQS"]
    return event["Properties"]


def all_statements(node: Any) -> list[dict[str, Any]]:
    """Every IAM statement anywhere in the template (inline policies, queue/topic policies...)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        statements = node.get("Statement")
        if isinstance(statements, dict):
            found.append(statements)
        elif isinstance(statements, list):
            found.extend(s for s in statements if isinstance(s, dict))
        for value in node.values():
            found.extend(all_statements(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(all_statements(item))
    return found


# --------------------------------------------------------------------------- intake queue


def test_intake_queue_visibility_timeout_covers_six_function_timeouts_plus_batching_window(template):
    # Given the intake function's timeout and the batching window (default and largest allowed)
    timeout = int(function_setting(template, "IntakeFunction", "Timeout"))
    window = template["Parameters"]["IntakeBatchingWindowSeconds"]
    # When reading the intake queue's visibility timeout
    visibility_timeout = int(properties(template, "IntakeQueue")["VisibilityTimeout"])
    # Then a message stays hidden for 6 function timeouts plus the batching window, whatever the window
    assert visibility_timeout >= 6 * timeout + int(window["Default"])
    assert visibility_timeout >= 6 * timeout + int(window["MaxValue"])


def test_intake_queue_redrives_to_the_dead_letter_queue_after_at_least_five_receives(template):
    # Given the intake queue's redrive policy
    redrive = properties(template, "IntakeQueue")["RedrivePolicy"]
    max_receive_count = template["Parameters"]["MaxReceiveCount"]
    # Then it points at the dead-letter queue
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IntakeDeadLetterQueue", "Arn"]}
    # And a message is retried at least 5 times, whatever the parameter's value
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert int(max_receive_count["Default"]) >= 5
    assert int(max_receive_count["MinValue"]) >= 5


def test_dead_letter_queue_keeps_messages_fourteen_days(template):
    # Given the dead-letter queue
    queue = properties(template, "IntakeDeadLetterQueue")
    # Then failed requests are kept for the SQS maximum, 14 days, encrypted
    assert int(queue["MessageRetentionPeriod"]) == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True


def test_intake_sqs_event_reports_partial_batch_failures_and_is_bounded(template):
    # Given the intake function's SQS event source
    event = intake_sqs_event(template)
    # Then one bad record never fails the batch
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # And batch size, batching window and concurrency are the template's parameters
    assert event["Queue"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}
    assert event["BatchSize"] == {"Ref": "IntakeBatchSize"}
    assert event["MaximumBatchingWindowInSeconds"] == {"Ref": "IntakeBatchingWindowSeconds"}
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "IntakeMaxConcurrency"}
    assert int(template["Parameters"]["IntakeMaxConcurrency"]["MinValue"]) >= 2  # the SQS minimum


# --------------------------------------------------------------------------- poller


def test_poller_runs_alone_on_a_schedule(template):
    # Given the poller function
    poller = properties(template, "PollerFunction")
    # Then at most one poller runs at a time
    assert poller["ReservedConcurrentExecutions"] == 1
    # And it is triggered by an EventBridge Scheduler schedule from the PollSchedule parameter
    (schedule,) = [e for e in poller["Events"].values() if e["Type"] == "ScheduleV2"]
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "PollSchedule"}
    assert schedule["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    assert parameter_default(template, "PollSchedule") == "rate(1 minute)"


def schedule_period_seconds(expression: str) -> int:
    """The period of an EventBridge Scheduler rate() expression."""
    match = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression)
    assert match, f"not a rate expression: {expression}"
    return int(match.group(1)) * {"minute": 60, "hour": 3600, "day": 86400}[match.group(2)]


def test_a_failed_or_late_poller_run_is_not_retried_the_next_tick_is(template):
    # Given the poller's asynchronous invocation settings (EventBridge Scheduler invokes it asynchronously;
    # Lambda's default would retry a failure twice and keep a throttled event up to 6 hours)
    config = properties(template, "PollerFunction")["EventInvokeConfig"]
    # Then Lambda does not retry a failed run
    assert config["MaximumRetryAttempts"] == 0
    # And drops a tick older than one schedule period (60 s is the least Lambda accepts)
    period = schedule_period_seconds(parameter_default(template, "PollSchedule"))
    assert 60 <= int(config["MaximumEventAgeInSeconds"]) <= period
    # And SAM makes of it the function's EventInvokeConfig resource
    from tests.aws_rules.iam import transformed_template

    resources = transformed_template(template)["Resources"]
    (invoke_config,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert invoke_config["FunctionName"] == {"Ref": "PollerFunction"} and invoke_config["Qualifier"] == "$LATEST"
    assert invoke_config["MaximumRetryAttempts"] == 0
    assert invoke_config["MaximumEventAgeInSeconds"] == config["MaximumEventAgeInSeconds"]


def test_poller_timeout_leaves_room_for_a_full_polling_round(template):
    # Given the poller's timeout and the schedule
    timeout = int(function_setting(template, "PollerFunction", "Timeout"))
    # Then it is longer than the intake's (polling many activities at a shared rate takes time)
    assert timeout >= int(function_setting(template, "IntakeFunction", "Timeout"))


# --------------------------------------------------------------------------- IAM


def iam_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every IAM statement except KMS key policies, whose "*" means "this key" (checked below)."""
    return all_statements({lid: r for lid, r in template["Resources"].items() if r["Type"] != "AWS::KMS::Key"})


def test_kms_key_policies_give_full_control_only_to_the_account_and_usage_to_named_services(template):
    for logical_id in resources_of_type(template, "AWS::KMS::Key"):
        for statement in properties(template, logical_id)["KeyPolicy"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "kms:*" in actions:
                assert statement["Principal"] == {
                    "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
                }
            else:
                assert set(statement["Principal"]) == {"Service"}, statement


def test_no_iam_statement_grants_every_action(template):
    # Given every IAM statement in the template
    statements = iam_statements(template)
    assert statements, "expected inline policy statements"
    # Then none allows "*" or a whole service ("sqs:*")
    for statement in statements:
        actions = statement.get("Action", [])
        for action in [actions] if isinstance(actions, str) else actions:
            assert action != "*" and not str(action).endswith(":*"), statement


def test_no_iam_statement_targets_every_resource(template):
    # Given every IAM statement in the template
    for statement in iam_statements(template):
        resources = statement.get("Resource", [])
        # Then each targets declared resources, never "*"
        assert resources != "*" and "*" not in (resources if isinstance(resources, list) else [resources]), statement


# What each function's code calls on the activity table (tests/integration/test_iam_calls.py proves the calls):
# both drive activity creation from the due-index (the intake for what it accepted, the poller for the rest).
TABLE_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
}
TABLE_RESOURCES = [{"Fn::GetAtt": ["ActivityTable", "Arn"]}, {"Fn::Sub": "${ActivityTable.Arn}/index/due-index"}]


def test_functions_are_granted_only_what_the_code_uses_on_this_stack_resources(template):
    # Given each function's policies
    for logical_id in resources_of_type(template, FUNCTION_TYPE):
        policies = properties(template, logical_id)["Policies"]
        by_name = {
            name: value
            for policy in policies
            if isinstance(policy, dict)
            for name, value in policy.items()
            if name != "Statement"
        }
        statements = [s for policy in policies if isinstance(policy, dict) for s in policy.get("Statement", ())]
        # Then the table is read and written on itself and its due-index only, never scanned nor deleted from
        (table,) = [s for s in statements if any(a.startswith("dynamodb:") for a in s["Action"])]
        assert set(table["Action"]) == TABLE_ACTIONS, logical_id
        assert table["Resource"] == TABLE_RESOURCES, logical_id
        # And the topic permission is scoped to this stack's result topic
        assert by_name["SNSPublishMessagePolicy"] == {"TopicName": {"Fn::GetAtt": ["ResultTopic", "TopicName"]}}
        # And the token secret is read and written back, only this one
        secret_statements = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
        assert secret_statements and all(s["Resource"] == {"Ref": "TokenSecret"} for s in secret_statements)
        assert {a for s in secret_statements for a in s["Action"]} == {
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
        }
        # And no other statement (the intake's SQS permissions are the event source's, from SAM)
        assert len(statements) == 2 and len(by_name) == 1, logical_id


def test_every_alarm_notifies_the_alarm_topic(template):
    # Given every CloudWatch alarm of the template
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 10
    for logical_id in alarms:
        # Then it has an action on the stack's alarm topic
        assert {"Ref": "AlarmTopic"} in properties(template, logical_id)["AlarmActions"], logical_id


def test_the_dashboard_shows_every_alarm_and_the_saved_queries_exist(template):
    body = properties(template, "Dashboard")["DashboardBody"]["Fn::Sub"][0]
    for logical_id in resources_of_type(template, "AWS::CloudWatch::Alarm"):
        assert f"${{{logical_id}.Arn}}" in body, logical_id
    names = {
        properties(template, q)["Name"]["Fn::Sub"].split("/", 1)[1]
        for q in resources_of_type(template, "AWS::Logs::QueryDefinition")
    }
    assert names == {"trace one request by request_id", "recent rejections with reasons", "Constant Contact errors"}


# --------------------------------------------------------------------------- table, topic, secret


def test_activity_table_has_the_due_index_ttl_pitr_encryption_and_on_demand_billing(template):
    # Given the activity table
    table = properties(template, "ActivityTable")
    # Then it is on-demand with a pk/sk primary key
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    # And the poller's due-index is keyed on due / due_at
    (index,) = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == "due-index"]
    assert {k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]} == {"due": "HASH", "due_at": "RANGE"}
    attribute_types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert attribute_types == {"pk": "S", "sk": "S", "due": "S", "due_at": "N"}
    # And finished records expire, the table is recoverable and encrypted
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_result_topic_is_encrypted(template):
    assert properties(template, "ResultTopic")["KmsMasterKeyId"] == "alias/aws/sns"


def test_token_secret_holds_no_literal_token(template):
    # Given the token secret
    secret = properties(template, "TokenSecret")
    # Then no secret value is written in the template: a generated placeholder the operator replaces
    assert "SecretString" not in secret
    placeholder = json.loads(secret["GenerateSecretString"]["SecretStringTemplate"])
    assert set(placeholder) == {"access_token"}


# --------------------------------------------------------------------------- functions


@pytest.mark.parametrize("variable", sorted(CONTRACT_VARIABLES | PROJECT_VARIABLES))
def test_every_function_gets_the_configuration_it_reads(template, variable):
    # Given every function of the template
    functions = resources_of_type(template, FUNCTION_TYPE)
    assert set(functions) >= {"IntakeFunction", "PollerFunction"}
    # Then each one's environment (Globals merged with its own) sets the variable
    for logical_id in functions:
        assert variable in function_variables(template, logical_id), logical_id


def test_environment_variables_point_at_this_stack_resources(template):
    # Given the intake function's environment
    variables = function_variables(template, "IntakeFunction")
    # Then each resource variable references the resource it names
    assert variables["CC_API_BASE_URL"] == {"Ref": "CcApiBaseUrl"}
    assert variables["CC_TOKEN_URL"] == {"Ref": "CcTokenUrl"}
    assert variables["CC_TOKEN_SECRET_ID"] == {"Ref": "TokenSecret"}
    assert variables["ACTIVITY_TABLE_NAME"] == {"Ref": "ActivityTable"}
    assert variables["RESULT_TOPIC_ARN"] == {"Ref": "ResultTopic"}
    assert variables["MAX_ACTIVITIES_PER_REQUEST"] == {"Ref": "MaxActivitiesPerRequest"}
    assert variables["CC_REQUESTS_PER_SECOND"] == {"Ref": "CcRequestsPerSecond"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "untag"
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


def test_constant_contact_endpoints_default_to_production(template):
    assert parameter_default(template, "CcApiBaseUrl") == "https://api.cc.email/v3"
    assert parameter_default(template, "CcTokenUrl") == "https://authz.constantcontact.com/oauth2/default/v1/token"


def test_functions_run_python_3_13_on_arm64_with_the_shared_layer(template):
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}]
    for logical_id in resources_of_type(template, FUNCTION_TYPE):
        assert function_setting(template, logical_id, "Runtime") == "python3.13"
        assert properties(template, logical_id)["Handler"] == "app.lambda_handler"


def test_shared_layer_is_built_for_python_3_13(template):
    # Given the shared layer
    layer = template["Resources"]["SharedLayer"]
    # Then SAM builds it with its Makefile, for the functions' runtime and architecture
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/shared"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    recipe = (REPO_ROOT / "layers" / "shared" / "Makefile").read_text()
    assert "build-SharedLayer:" in recipe
    assert "--platform manylinux2014_aarch64" in recipe and "--python-version 3.13" in recipe
    # And with bytecode no zip date can invalidate: Lambda cannot write it, so without it each cold start compiles
    assert "-m compileall" in recipe and "--invalidation-mode checked-hash" in recipe


def test_every_function_logs_to_its_declared_log_group_with_retention_and_encryption(template):
    # Given each function's logging configuration
    for logical_id in resources_of_type(template, FUNCTION_TYPE):
        group = properties(template, logical_id)["LoggingConfig"]["LogGroup"]["Ref"]
        # Then it names a log group of the template, with a retention and the stack's KMS key
        group_properties = properties(template, group)
        assert template["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
        assert group_properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert group_properties["KmsKeyId"] == {"Fn::GetAtt": ["OperationsKey", "Arn"]}


def test_outputs_expose_what_producers_subscribers_and_operators_need(template):
    assert set(template["Outputs"]) >= {
        "IntakeQueueUrl",
        "IntakeQueueArn",
        "DeadLetterQueueUrl",
        "ResultTopicArn",
        "ActivityTableName",
        "TokenSecretArn",
        "IntakeFunctionName",
        "PollerFunctionName",
    }


def test_cfn_lint_passes():
    # Given cfn-lint from the project's virtualenv (or PATH)
    local_cfn_lint = Path(sys.executable).parent / "cfn-lint"
    cfn_lint = str(local_cfn_lint) if local_cfn_lint.exists() else shutil.which("cfn-lint")
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed")
    # When linting the template
    result = subprocess.run([cfn_lint, str(TEMPLATE_PATH)], capture_output=True, text=True, check=False)
    # Then it reports nothing
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- sample events


ID_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@pytest.mark.parametrize("file_name", ["intake-sqs-batch.json", "intake-invalid.json"])
def test_sample_sqs_events_have_the_shape_lambda_delivers(file_name):
    # Given a sample SQS event
    event = json.loads((EVENTS_DIR / file_name).read_text(encoding="utf-8"))
    # Then every record looks like what the SQS event source sends to the intake function
    message_ids = [record["messageId"] for record in event["Records"]]
    assert len(set(message_ids)) == len(message_ids)
    for record in event["Records"]:
        assert isinstance(record["body"], str)
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].endswith(":untag-IntakeQueue")
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["attributes"]["SentTimestamp"].isdigit()


def test_sample_batch_covers_every_source_type_and_envelope():
    # Given the valid sample batch
    bodies = [json.loads(r["body"]) for r in json.loads((EVENTS_DIR / "intake-sqs-batch.json").read_text())["Records"]]
    requests = [b.get("detail") or (json.loads(b["Message"]) if b.get("Type") == "Notification" else b) for b in bodies]
    # Then it has one request per source type, both envelopes and a request to split
    source_types = {key for request in requests for key in request["source"] if key != "exclude"}
    assert source_types >= {"contact_ids", "list_ids", "tag_ids", "all_active_contacts", "new_subscriber"}
    assert any(b.get("detail-type") == "Untag Requested" for b in bodies)
    assert any(b.get("Type") == "Notification" for b in bodies)
    assert max(len(r["source"].get("contact_ids", [])) for r in requests) > 500
    # And every id in the contact_ids sources matches the contract's id pattern
    for request in requests:
        for contact_id in request["source"].get("contact_ids", []):
            assert ID_PATTERN.match(contact_id), contact_id


def test_every_queue_topic_table_and_log_group_is_encrypted(template):
    for logical_id in resources_of_type(template, "AWS::SQS::Queue"):
        queue = properties(template, logical_id)
        assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue, logical_id
    for logical_id in resources_of_type(template, "AWS::SNS::Topic"):
        assert "KmsMasterKeyId" in properties(template, logical_id), logical_id
    for logical_id in resources_of_type(template, "AWS::DynamoDB::Table"):
        assert properties(template, logical_id)["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    for logical_id in resources_of_type(template, "AWS::Logs::LogGroup"):
        assert "KmsKeyId" in properties(template, logical_id), logical_id


def test_the_intake_queue_refuses_what_the_request_cap_would_reject(template):
    # The request cap (docs/contracts.md) is the queue's own MaximumMessageSize: SQS refuses a larger
    # message to its producer, and the intake rejects one that slips through (untag.request).
    from untag.request import BODY_MAX_BYTES

    assert properties(template, "IntakeQueue")["MaximumMessageSize"] == BODY_MAX_BYTES


def test_a_message_over_the_request_cap_is_refused_by_the_provisioned_intake_queue(stack):
    import boto3
    from botocore.exceptions import ClientError

    from untag.request import BODY_MAX_BYTES

    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody="x" * BODY_MAX_BYTES)
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody="x" * (BODY_MAX_BYTES + 1))
    assert refused.value.response["Error"]["Code"] in (
        "InvalidParameterValue",
        "AWS.SimpleQueueService.InvalidParameterValue",
    )
