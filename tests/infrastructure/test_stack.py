"""Infrastructure tests: devkit.stack builds, in moto, exactly the resources template.yaml declares."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from devkit.stack import Stack, load_template, provision

REGION = "us-east-1"
TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no endpoint override, so nothing can reach real AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def mocked_aws(aws_environment: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def stack(mocked_aws: None) -> Stack:
    return provision(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template(TEMPLATE_PATH)


def queue_attributes(queue_url: str) -> dict[str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]


# --------------------------------------------------------------------------- template loading


def test_load_template_turns_short_tags_into_long_form_intrinsics(template):
    # Given template.yaml written with !Ref, !GetAtt and !Sub
    resources = template["Resources"]
    # Then they come back in the JSON (long) form
    assert resources["IntakeQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["IntakeDeadLetterQueue", "Arn"]
    }
    assert resources["IntakeFunction"]["Properties"]["Environment"]["Variables"]["ACTIVITY_TABLE_NAME"] == {
        "Ref": "ActivityTable"
    }
    assert resources["IntakeLogGroup"]["Properties"]["LogGroupName"] == {
        "Fn::Sub": "/aws/lambda/${AWS::StackName}-intake"
    }
    # And the format version stays a string (not a date)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"


# --------------------------------------------------------------------------- provisioned resources


def test_provision_creates_the_intake_queue_with_the_template_properties(stack, template):
    # Given the template's intake queue properties
    declared = template["Resources"]["IntakeQueue"]["Properties"]
    # When reading the queue provision() created
    attributes = queue_attributes(stack.queue_url)
    # Then it has the template's visibility timeout and retention
    assert attributes["VisibilityTimeout"] == str(declared["VisibilityTimeout"])
    assert attributes["MessageRetentionPeriod"] == str(declared["MessageRetentionPeriod"])
    assert attributes["QueueArn"] == stack.queue_arn
    assert stack.queue_url.endswith("/untag-IntakeQueue")
    # And it redrives to the dead-letter queue after the MaxReceiveCount default
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == int(template["Parameters"]["MaxReceiveCount"]["Default"])
    assert redrive["deadLetterTargetArn"] == queue_attributes(stack.dlq_url)["QueueArn"]


def test_provision_creates_the_dead_letter_queue_with_fourteen_days_retention(stack):
    attributes = queue_attributes(stack.dlq_url)
    assert attributes["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    assert stack.dlq_url.endswith("/untag-IntakeDeadLetterQueue")


def test_provision_creates_the_activity_table_with_its_index_ttl_and_backups(stack, template):
    # Given the activity table provision() created
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    table = dynamodb.describe_table(TableName=stack.table_name)["Table"]
    declared = template["Resources"]["ActivityTable"]["Properties"]
    # Then its keys, attributes and billing mode are the template's
    assert stack.table_name == "untag-ActivityTable"
    assert table["KeySchema"] == declared["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(declared["AttributeDefinitions"], key=str)
    assert table["BillingModeSummary"]["BillingMode"] == declared["BillingMode"]
    # And the poller's due-index exists with the template's keys
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "due-index"
    assert index["KeySchema"] == declared["GlobalSecondaryIndexes"][0]["KeySchema"]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    # And TTL and point-in-time recovery are on, as in the template
    ttl = dynamodb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    backups = dynamodb.describe_continuous_backups(TableName=stack.table_name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    assert table["SSEDescription"]["Status"] == "ENABLED"


def test_provision_creates_the_result_topic_and_a_placeholder_token_secret(stack):
    # Given the topic and secret provision() created
    topic = boto3.client("sns", region_name=REGION).get_topic_attributes(TopicArn=stack.topic_arn)["Attributes"]
    secret = boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=stack.secret_id)
    # Then the topic is encrypted as in the template
    assert stack.topic_arn.endswith(":untag-ResultTopic")
    assert topic["KmsMasterKeyId"] == "alias/aws/sns"
    # And the secret holds a placeholder the tests or the runner replace
    assert secret["ARN"] == stack.secret_id
    assert json.loads(secret["SecretString"]) == {"access_token": "placeholder"}


# --------------------------------------------------------------------------- function environment


def test_intake_environment_is_resolved_to_the_created_resources(stack):
    # When asking for the intake function's environment
    environment = stack.function_environment("IntakeFunction")
    # Then every reference is resolved to what provision() created
    assert environment["ACTIVITY_TABLE_NAME"] == stack.table_name
    assert environment["RESULT_TOPIC_ARN"] == stack.topic_arn
    assert environment["CC_TOKEN_SECRET_ID"] == stack.secret_id
    # And parameters take their defaults, as strings like CloudFormation passes them
    assert environment["CC_API_BASE_URL"] == "https://api.cc.email/v3"
    assert environment["CC_TOKEN_URL"] == "https://authz.constantcontact.com/oauth2/default/v1/token"
    assert environment["CC_REQUESTS_PER_SECOND"] == "3"
    assert environment["MAX_ACTIVITIES_PER_REQUEST"] == "100"
    assert environment["ACTIVITY_DEADLINE_HOURS"] == "24"
    assert environment["RETENTION_DAYS"] == "30"
    # And the Globals are merged in
    assert environment["POWERTOOLS_SERVICE_NAME"] == "untag"
    assert environment["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert all(isinstance(value, str) for value in environment.values())


def test_poller_environment_has_the_shared_configuration(stack):
    environment = stack.function_environment("PollerFunction")
    assert environment["ACTIVITY_TABLE_NAME"] == stack.table_name
    assert environment["RESULT_TOPIC_ARN"] == stack.topic_arn
    assert environment["CC_TOKEN_SECRET_ID"] == stack.secret_id
    assert environment["MAX_ACTIVITIES_PER_REQUEST"] == "100"  # the poller creates activities too


def test_function_environment_of_an_unknown_function_is_an_error(stack):
    with pytest.raises(KeyError, match="NoSuchFunction"):
        stack.function_environment("NoSuchFunction")


def test_parameters_and_prefix_override_the_template_defaults(mocked_aws):
    # Given a local Constant Contact simulator, a lower retry count and another prefix
    parameters = {"CcApiBaseUrl": "http://127.0.0.1:8765/v3", "MaxReceiveCount": "5", "LogLevel": "DEBUG"}
    # When provisioning with them
    stack = provision(TEMPLATE_PATH, parameters=parameters, prefix="bench")
    # Then the resources and the environment follow
    assert stack.table_name == "bench-ActivityTable"
    assert json.loads(queue_attributes(stack.queue_url)["RedrivePolicy"])["maxReceiveCount"] == 5
    environment = stack.function_environment("IntakeFunction")
    assert environment["CC_API_BASE_URL"] == "http://127.0.0.1:8765/v3"
    assert environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"


def test_unknown_parameter_is_an_error(mocked_aws):
    with pytest.raises(KeyError, match="NoSuchParameter"):
        provision(TEMPLATE_PATH, parameters={"NoSuchParameter": "1"})


def test_provisioning_twice_reuses_the_resources_and_keeps_the_secret_value(mocked_aws):
    # Given a provisioned stack whose secret the runner filled
    first = provision(TEMPLATE_PATH)
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secrets.put_secret_value(SecretId=first.secret_id, SecretString=json.dumps({"access_token": "real"}))
    # When provisioning again against the same endpoint
    second = provision(TEMPLATE_PATH)
    # Then the same resources come back and the tokens are kept
    assert (second.queue_url, second.table_name, second.topic_arn, second.secret_id) == (
        first.queue_url,
        first.table_name,
        first.topic_arn,
        first.secret_id,
    )
    assert json.loads(secrets.get_secret_value(SecretId=second.secret_id)["SecretString"]) == {"access_token": "real"}


def test_provision_works_against_a_moto_server_endpoint(aws_environment, monkeypatch):
    # Given a moto server reached through AWS_ENDPOINT_URL, as the local runner uses it
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        # When provisioning
        stack = provision(TEMPLATE_PATH)
        # Then the resources exist on that server
        assert queue_attributes(stack.queue_url)["VisibilityTimeout"] == "420"
        assert boto3.client("dynamodb", region_name=REGION).describe_table(TableName=stack.table_name)
        assert stack.function_environment("IntakeFunction")["ACTIVITY_TABLE_NAME"] == stack.table_name
    finally:
        server.stop()
