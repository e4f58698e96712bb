"""The wiring recipes of docs/recipes.md (docs/recipes/*.yaml) work as documented.

Every snippet passes cfn-lint (with the serverless rules, as `make lint` runs them on template.yaml).
Each is then exercised with the stack in moto and the service's own functions (``pipeline``):
the EventBridge rule's input transformer output is accepted and completes, the SNS fan-in envelope
is accepted, the failures-only filter policy lets only failures through, and the Step Functions
state machine (executed by moto) submits a request and returns its result event.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from devkit.stack import load_template

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "docs" / "recipes"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
FAILURE_STATES = {"failed", "timed_out", "cancelled", "rejected"}

# What a CRM puts on its event bus (the shape the EventBridge recipe's pattern and transformer expect).
CRM_EVENT = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "Contact Tags Removal Requested",
    "source": "com.example.crm",
    "account": "123456789012",
    "time": "2026-11-26T10:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {
        "job_id": "churn-2026-11-26-000123",
        "contact_ids": ["c-1", "c-2"],
        "remove_tag_ids": ["t-churn-risk"],
        "reason": "churned",
    },
}


def recipe(name: str) -> dict[str, Any]:
    return load_template(RECIPES / name)


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def settle(pipeline, requests: int) -> dict[str, dict[str, Any]]:
    assert pipeline.run_until_settled(requests, timeout=30), pipeline.results
    return {event["request_id"]: event for event in pipeline.results}


# --- cfn-lint ----------------------------------------------------------------------------------------


def test_the_recipes_are_the_ones_documented():
    names = sorted(path.name for path in RECIPES.glob("*.yaml"))
    assert names == ["eventbridge-rule.yaml", "failures-subscriber.yaml", "sns-fan-in.yaml", "step-functions.yaml"]
    wiring = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert all(f"docs/recipes/{name}" in wiring for name in names)


def test_every_recipe_passes_cfn_lint():
    files = sorted(str(path) for path in RECIPES.glob("*.yaml"))
    for arguments in ([], ["-a", "cfn_lint_serverless.rules"]):
        answer = subprocess.run([str(CFN_LINT), *files, *arguments], capture_output=True, text=True, timeout=120)
        assert answer.returncode == 0, answer.stdout + answer.stderr


@pytest.mark.parametrize(
    "name", ["eventbridge-rule.yaml", "sns-fan-in.yaml", "failures-subscriber.yaml", "step-functions.yaml"]
)
def test_every_recipe_takes_the_service_outputs_as_parameters(name):
    parameters = recipe(name)["Parameters"]
    service_outputs = load_template()["Outputs"]
    taken = [parameter for parameter in parameters if parameter in service_outputs]
    assert taken, f"{name} takes none of the service's outputs"
    assert all("Default" not in parameters[parameter] for parameter in taken)


# --- EventBridge rule -> intake queue, with an input transformer -----------------------------------------


def _json_path(document: Any, path: str) -> Any:
    """The value at a dotted JSON path such as $.detail.contact_ids (None if absent)."""
    assert path.startswith("$.")
    for key in path[2:].split("."):
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return document


def render_input_transformer(transformer: dict[str, Any], event: dict[str, Any]) -> str:
    """What EventBridge sends the target: each <variable> replaced by its value. Inside a JSON string the
    value is inserted as text (EventBridge does not escape it), elsewhere as JSON; a path absent from the
    event creates no variable, so its placeholder becomes empty."""
    values = {name: _json_path(event, path) for name, path in transformer["InputPathsMap"].items()}
    template = transformer["InputTemplate"]
    output, in_string, position = [], False, 0
    while position < len(template):
        character = template[position]
        match = re.match(r"<([A-Za-z0-9_.-]+)>", template[position:]) if character == "<" else None
        if match:
            value = values.get(match.group(1))
            if value is None:
                output.append("")
            elif in_string:
                output.append(value if isinstance(value, str) else json.dumps(value))
            else:
                output.append(json.dumps(value))
            position += match.end()
            continue
        if character == '"' and (position == 0 or template[position - 1] != "\\"):
            in_string = not in_string
        output.append(character)
        position += 1
    return "".join(output)


def _rule() -> tuple[dict[str, Any], dict[str, Any]]:
    [rule] = resources_of_type(recipe("eventbridge-rule.yaml"), "AWS::Events::Rule").values()
    [target] = rule["Targets"]
    return rule, target


def test_the_eventbridge_transformer_output_is_a_valid_request_that_completes(pipeline):
    _, target = _rule()
    body = render_input_transformer(target["InputTransformer"], CRM_EVENT)
    assert json.loads(body) == {
        "request_id": CRM_EVENT["id"],
        "source": {"contact_ids": ["c-1", "c-2"]},
        "tag_ids": ["t-churn-risk"],
        "metadata": {
            "origin": "eventbridge",
            "crm_source": "com.example.crm",
            "crm_job": "churn-2026-11-26-000123",
            "event_time": "2026-11-26T10:00:00Z",
        },
    }
    # A CRM event without the optional job id still makes a valid request.
    without_job = json.loads(json.dumps(CRM_EVENT).replace('"job_id"', '"other"'))
    without_job["id"] = str(uuid.uuid4())
    pipeline.submit([body, render_input_transformer(target["InputTransformer"], without_job)])
    events = settle(pipeline, 2)
    assert events[CRM_EVENT["id"]]["state"] == "completed"
    assert events[CRM_EVENT["id"]]["metadata"]["crm_job"] == "churn-2026-11-26-000123"
    assert events[without_job["id"]]["state"] == "completed"
    assert events[without_job["id"]]["metadata"]["crm_job"] == ""


def test_the_eventbridge_rule_matches_crm_events_and_delivers_them_to_the_intake(pipeline, stack):
    """The same rule, pattern and transformer in moto's EventBridge, with the intake queue as its target."""
    rule, target = _rule()
    events = boto3.client("events")
    events.put_rule(Name="crm-untag", EventPattern=json.dumps(rule["EventPattern"] | {"source": ["com.example.crm"]}))
    events.put_targets(
        Rule="crm-untag",
        Targets=[{"Id": target["Id"], "Arn": stack.queue_arn, "InputTransformer": target["InputTransformer"]}],
    )
    put = events.put_events(
        Entries=[
            {
                "Source": "com.example.crm",
                "DetailType": CRM_EVENT["detail-type"],
                "Detail": json.dumps(CRM_EVENT["detail"]),
            },
            {"Source": "com.example.crm", "DetailType": "Contact Created", "Detail": json.dumps({"contact_id": "c-1"})},
        ]
    )
    event_id = put["Entries"][0]["EventId"]
    [result] = settle(pipeline, 1).values()  # the "Contact Created" event does not match the pattern
    assert result["request_id"] == event_id and result["state"] == "completed", result
    assert result["metadata"]["crm_job"] == "churn-2026-11-26-000123"


def test_a_crm_event_with_a_bad_id_is_rejected_loudly_not_dropped(pipeline):
    _, target = _rule()
    bad = json.loads(json.dumps(CRM_EVENT))
    bad["id"], bad["detail"]["contact_ids"] = str(uuid.uuid4()), ["c-1", "../c-2"]
    pipeline.submit([render_input_transformer(target["InputTransformer"], bad)])
    [event] = settle(pipeline, 1).values()
    assert event["request_id"] == bad["id"] and event["state"] == "rejected"
    assert any(error.startswith("source.contact_ids") for error in event["errors"])


# --- SNS fan-in ------------------------------------------------------------------------------------------


def test_the_sns_fan_in_envelope_is_accepted(pipeline, stack):
    [subscription] = resources_of_type(recipe("sns-fan-in.yaml"), "AWS::SNS::Subscription").values()
    assert subscription["RawMessageDelivery"] is False and subscription["Protocol"] == "sqs"
    sns = boto3.client("sns")
    topic_arn = sns.create_topic(Name="crm-untag-requests")["TopicArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol=subscription["Protocol"],
        Endpoint=stack.queue_arn,
        Attributes={"RawMessageDelivery": str(subscription["RawMessageDelivery"]).lower()},
    )
    sns.publish(
        TopicArn=topic_arn,
        Message=json.dumps(
            {"request_id": "sns-1", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"], "metadata": {"via": "sns"}}
        ),
    )
    message_id = sns.publish(
        TopicArn=topic_arn, Message=json.dumps({"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-2"]})
    )["MessageId"]
    events = settle(pipeline, 2)
    assert events["sns-1"]["state"] == "completed" and events["sns-1"]["metadata"] == {"via": "sns"}
    assert events[message_id]["state"] == "completed"  # no request_id: the SNS MessageId is its id


# --- failures-only subscriber ----------------------------------------------------------------------------


def test_the_failures_filter_policy_lets_only_failures_through(pipeline, stack, simulator):
    [subscription] = resources_of_type(recipe("failures-subscriber.yaml"), "AWS::SNS::Subscription").values()
    assert set(subscription["FilterPolicy"]["state"]) == FAILURE_STATES
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    queue_url = sqs.create_queue(QueueName="untag-failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={
            "FilterPolicy": json.dumps(subscription["FilterPolicy"]),
            "FilterPolicyScope": subscription["FilterPolicyScope"],
            "RawMessageDelivery": str(subscription["RawMessageDelivery"]).lower(),
        },
    )
    simulator.set_outcome("t-doomed", "failed")
    pipeline.submit(
        [
            json.dumps({"request_id": "ok-1", "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-fine"]}),
            json.dumps({"request_id": "failed-1", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-doomed"]}),
            json.dumps({"request_id": "rejected-1", "source": {"contact_ids": ["c-1"]}}),
        ]
    )
    everything = settle(pipeline, 3)
    assert {request_id: event["state"] for request_id, event in everything.items()} == {
        "ok-1": "completed",
        "failed-1": "failed",
        "rejected-1": "rejected",
    }
    received = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        received += [json.loads(message["Body"]) for message in messages]  # raw delivery: the event itself
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(messages)],
        )
    assert sorted(event["request_id"] for event in received) == ["failed-1", "rejected-1"]
    for event in received:  # the very events the service published
        assert event == {k: v for k, v in everything[event["request_id"]].items() if k != "_attributes"}


# --- Step Functions: submit, then wait for the result ---------------------------------------------------


@pytest.fixture
def state_machine(stack, monkeypatch):
    """The recipe's state machine, created in moto with execution enabled (moto runs the ASL)."""
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config["stepfunctions"], "execute_state_machine", True)
    [properties] = resources_of_type(recipe("step-functions.yaml"), "AWS::StepFunctions::StateMachine").values()
    definition = json.dumps(properties["Definition"])
    for name, value in {"IntakeQueueUrl": stack.queue_url, "ActivityTableName": stack.table_name}.items():
        assert {"Ref": name} == properties["DefinitionSubstitutions"][name]
        definition = definition.replace("${" + name + "}", value)
    assert "${" not in definition
    sfn = boto3.client("stepfunctions")
    return sfn, sfn.create_state_machine(
        name="untag-and-wait", definition=definition, roleArn="arn:aws:iam::123456789012:role/untag-and-wait"
    )["stateMachineArn"]


def run_execution(pipeline, state_machine, name: str, execution_input: dict[str, Any]) -> dict[str, Any]:
    sfn, arn = state_machine
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(execution_input))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pipeline.intake_once()
        pipeline.poll_once()
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            assert described["status"] == "SUCCEEDED", sfn.get_execution_history(
                executionArn=execution["executionArn"]
            )["events"][-3:]
            return json.loads(described["output"])
        time.sleep(0.2)
    raise AssertionError(f"execution {name} still running")


def test_the_state_machine_submits_a_request_and_returns_its_result_event(pipeline, state_machine):
    event = run_execution(
        pipeline,
        state_machine,
        "crm-2026-11-26-1",
        {
            "request": {"source": {"contact_ids": ["c-1", "c-2"]}, "tag_ids": ["t-1"], "metadata": {"via": "sfn"}},
            "poll_seconds": 1,
        },
    )
    assert event["request_id"] == "crm-2026-11-26-1"  # the execution name
    assert event["state"] == "completed" and event["metadata"] == {"via": "sfn"}
    pipeline.collect_results()
    assert event == {k: v for k, v in pipeline.results[0].items() if k != "_attributes"}  # the published event


def test_the_state_machine_returns_the_rejection_of_a_bad_request(pipeline, state_machine):
    by_request_id = run_execution(
        pipeline,
        state_machine,
        "sfn-bad-1",
        {"request": {"request_id": "sfn-bad-1", "source": {"contact_ids": ["c-1"]}, "tag_ids": []}, "poll_seconds": 1},
    )
    assert by_request_id["state"] == "rejected" and by_request_id["request_id"] == "sfn-bad-1"
    # A request_id the service cannot read: the rejection is filed under the SQS message id.
    by_message_id = run_execution(
        pipeline,
        state_machine,
        "sfn-bad-2",
        {
            "request": {"request_id": "not a valid id", "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]},
            "poll_seconds": 1,
        },
    )
    assert by_message_id["state"] == "rejected"
    assert by_message_id["errors"] == ["request_id: must be 1-128 characters of A-Z a-z 0-9 . _ : -"]
