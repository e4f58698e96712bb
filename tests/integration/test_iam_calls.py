"""IAM proven by the calls: each function's role allows what its code calls, and nothing it never calls.

tests/aws_rules/iam.py checks every AWS call the functions' code makes against their roles
(template.yaml after SAM's transform), denies what the role does not allow as AWS would, and
records the calls. Here one run drives both handlers through every path that reaches AWS, and the
actions used must be the actions granted. The run is self-contained, so the result does not depend
on which other tests ran before.

An action granted but never called fails the test unless its line in template.yaml says why, in a
comment that starts with ``unused:``, e.g. ``- secretsmanager:DescribeSecret # unused: <reason>``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import boto3
import pytest
from botocore.exceptions import ClientError

from devkit.stack import REPO_ROOT
from tests.aws_rules.iam import acting_as, action_matches, role_policies

FUNCTIONS = ("IntakeFunction", "PollerFunction")
REMOVE_TAGS = "/v3/activities/contacts_taggings_remove"
UNUSED_REASON = re.compile(r"^\s*-\s*([A-Za-z0-9-]+:[A-Za-z0-9*?]+)\s*#\s*unused:\s*(\S.*)$")


def list_request(request_id: str, tag_id: str) -> dict:
    """A request that needs an activity of its own."""
    return {"request_id": request_id, "source": {"list_ids": [f"l-{request_id}"]}, "tag_ids": [tag_id]}


def unused_reasons(function: str) -> dict[str, str]:
    """The actions in a function's resource in template.yaml whose line says ``# unused: <reason>``."""
    lines = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index(f"  {function}:")
    end = next((n for n in range(start + 1, len(lines)) if re.match(r"^  \S", lines[n])), len(lines))
    return {match.group(1): match.group(2) for line in lines[start:end] if (match := UNUSED_REASON.match(line))}


def drive_every_path_to_aws(pipeline, invoke, sqs_event, simulator) -> None:
    """Both handlers, through each path of their code that calls AWS."""
    # A valid request, a rejected one and one Constant Contact refuses: an activity recorded, two requests
    # finished by the intake itself, their events stored, published and taken off the work list
    simulator.fail_next("POST", REMOVE_TAGS, 400, body=[{"error_key": "bad", "error_message": "refused"}])
    batch = sqs_event(list_request("r-refused", "t-0"), list_request("r-1", "t-1"), "not a request")
    assert invoke.intake(batch) == {"batchItemFailures": []}
    # The poller refreshes an expired access token and writes it back to the secret, then sees the activity
    # finish and publishes its request's result
    simulator.expire_access_tokens()
    invoke.poller()
    invoke.poller()
    # The intake refreshes an expired access token and writes it back to the secret
    simulator.expire_access_tokens()
    assert invoke.intake(sqs_event(list_request("r-2", "t-2"))) == {"batchItemFailures": []}
    # The daily quota is spent: the intake records the request of a real message and stores the block
    simulator.exhaust_quota()
    pipeline.submit([json.dumps(list_request("r-3", "t-3"))])
    assert pipeline.intake_once() == 1
    # And the poller skips its run
    assert invoke.poller()["skipped"] == "daily quota spent"

    states = {event["request_id"]: event["state"] for event in invoke.results()}
    assert states.pop("r-1") == "completed" and states.pop("r-refused") == "failed"
    assert list(states.values()) == ["rejected"]
    assert simulator.token_refreshes == 2 and simulator.count("POST", REMOVE_TAGS, 429) == 1


def test_each_function_is_granted_exactly_the_actions_its_code_calls(pipeline, invoke, sqs_event, simulator, iam_calls):
    # Given both functions driven through every path that reaches AWS
    drive_every_path_to_aws(pipeline, invoke, sqs_event, simulator)
    used = iam_calls.actions()
    policies = role_policies(pipeline.stack)

    # Then no call was denied: each role allows every action its code calls, on the resources it calls it on
    assert [(call.function, call.action, call.denied) for call in iam_calls.denied()] == []

    # And each action the template grants a function is called by it, or its line says why not
    never_called: dict[str, list[str]] = {}
    stale_reasons: dict[str, list[str]] = {}
    for function in FUNCTIONS:
        called = used.get(function, set())
        reasons = unused_reasons(function)
        granted = policies[function].granted_actions()
        never = sorted(
            action
            for action in granted
            if action not in reasons and not any(action_matches(action, call) for call in called)
        )
        if never:
            never_called[function] = never
        stale = sorted(action for action in reasons if any(action_matches(action, call) for call in called))
        if stale:
            stale_reasons[function] = stale
    assert never_called == {}, "granted but never called: remove them, or say why on their line (# unused: ...)"
    # And no action is excused as unused while the code calls it
    assert stale_reasons == {}


def test_the_roles_come_from_sams_transform_with_real_arns(pipeline):
    # Given the roles SAM makes of template.yaml, resolved against the local stack
    policies = role_policies(pipeline.stack)
    stack = pipeline.stack
    for function in FUNCTIONS:
        policy = policies[function]
        # Then the SNSPublishMessagePolicy template became sns:Publish on the result topic's own ARN
        assert policy.decide("sns:Publish", [stack.topic_arn]) is None
        assert policy.decide("sns:Publish", [stack.topic_arn + "-other"]) is not None
        # And the token secret is read by its ARN, and only that secret
        assert policy.decide("secretsmanager:GetSecretValue", [stack.secret_id]) is None
        assert policy.decide("secretsmanager:GetSecretValue", [stack.secret_id[:-1] + "X"]) is not None
        # And the table is queried through its due-index only
        table_arn = stack.attributes["ActivityTable"]["Arn"]
        assert policy.decide("dynamodb:Query", [table_arn + "/index/due-index"]) is None
        assert policy.decide("dynamodb:Query", [table_arn + "/index/other"]) is not None
        # And the queue is the event source's: SAM's AWSLambdaSQSQueueExecutionRole, for the intake only
        allowed = policy.decide("sqs:DeleteMessage", [stack.queue_arn]) is None
        assert allowed == (function == "IntakeFunction")


DENIED_CALLS = {
    # service: (a call the poller's role does not allow, the action AWS names, the error code AWS answers)
    "dynamodb": (
        lambda stack: boto3.client("dynamodb").scan(TableName=stack.table_name),
        "dynamodb:Scan",
        "AccessDeniedException",
    ),
    "secretsmanager": (
        lambda stack: boto3.client("secretsmanager").describe_secret(SecretId=stack.secret_id),
        "secretsmanager:DescribeSecret",
        "AccessDeniedException",
    ),
    "sns": (
        lambda stack: boto3.client("sns").create_topic(Name="not-allowed"),
        "sns:CreateTopic",
        "AuthorizationError",
    ),
    "sqs": (
        lambda stack: boto3.client("sqs").send_message_batch(
            QueueUrl=stack.queue_url, Entries=[{"Id": "1", "MessageBody": "{}"}]
        ),
        "sqs:SendMessage",
        "AccessDenied",
    ),
}


@pytest.mark.parametrize("service", sorted(DENIED_CALLS))
def test_a_call_the_role_does_not_allow_fails_as_in_aws_and_never_reaches_moto(stack, iam_calls, service):
    call, action, code = DENIED_CALLS[service]
    # When the poller's code makes a call its role does not allow
    with acting_as(stack, "PollerFunction"), pytest.raises(ClientError) as raised:
        call(stack)
    # Then it fails with the service's own error, naming the action and the role
    error = raised.value.response["Error"]
    assert error["Code"] == code
    assert f"is not authorized to perform: {action} on resource: " in error["Message"]
    assert "assumed-role/untag-PollerFunctionRole/" in error["Message"]
    assert [call.action for call in iam_calls.take_denied()] == [action]
    # And nothing happened in moto
    assert not boto3.client("sqs").receive_message(QueueUrl=stack.queue_url).get("Messages")
    assert not [t for t in boto3.client("sns").list_topics()["Topics"] if t["TopicArn"].endswith(":not-allowed")]


def test_batch_apis_are_authorised_by_their_single_item_action(stack, iam_calls):
    # When the intake's code uses batch APIs its role allows through their single-item actions
    # (sqs:DeleteMessage comes from AWSLambdaSQSQueueExecutionRole, which SAM attaches for the SQS event)
    with acting_as(stack, "IntakeFunction"):
        boto3.client("sns").publish_batch(
            TopicArn=stack.topic_arn, PublishBatchRequestEntries=[{"Id": "1", "Message": "{}"}]
        )
        boto3.client("sqs").delete_message_batch(
            QueueUrl=stack.queue_url, Entries=[{"Id": "1", "ReceiptHandle": "not-a-real-one"}]
        )
    # Then both are allowed, as sns:Publish and sqs:DeleteMessage on the stack's topic and queue
    assert [(call.operation, call.action, call.resources, call.denied) for call in iam_calls.all()] == [
        ("sns.PublishBatch", "sns:Publish", (stack.topic_arn,), None),
        ("sqs.DeleteMessageBatch", "sqs:DeleteMessage", (stack.queue_arn,), None),
    ]


def test_calls_outside_the_functions_code_are_neither_checked_nor_recorded(stack, iam_calls):
    boto3.client("dynamodb").scan(TableName=stack.table_name)
    assert iam_calls.all() == []


def test_a_poller_role_without_batch_write_item_fails_the_run_that_publishes(
    pipeline, invoke, sqs_event, monkeypatch, iam_calls
):
    # Given the poller deployed with a role that lacks dynamodb:BatchWriteItem (as template.yaml once did)
    template = copy.deepcopy(pipeline.stack.template)
    (table_statement, *_) = template["Resources"]["PollerFunction"]["Properties"]["Policies"][0]["Statement"]
    table_statement["Action"] = [action for action in table_statement["Action"] if action != "dynamodb:BatchWriteItem"]
    from devkit.pipeline import load_handler

    monkeypatch.setattr(
        pipeline, "poller", load_handler(dataclasses.replace(pipeline.stack, template=template), "PollerFunction")
    )
    assert invoke.intake(sqs_event(list_request("r-1", "t-1"))) == {"batchItemFailures": []}
    invoke.poller()
    # When the activity finishes and the run publishes its request's result
    with pytest.raises(ClientError) as raised:
        invoke.poller()
    # Then the run fails where AWS would fail it: the event went out but cannot leave the work list,
    # so every later run would publish it again
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:BatchWriteItem" in raised.value.response["Error"]["Message"]
    assert [event["request_id"] for event in invoke.results()] == ["r-1"]
    assert [(call.function, call.action) for call in iam_calls.take_denied()] == [
        ("PollerFunction", "dynamodb:BatchWriteItem")
    ]
