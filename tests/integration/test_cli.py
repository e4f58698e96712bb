"""The operator CLI (`untag`, untag_operator/) against the stack in moto: every subcommand and every clear error.

The CLI is called in-process (``main(argv)``, output read with capsys); the stack is the one
template.yaml describes (``stack`` fixture), named by ``--outputs FILE`` or, through a CloudFormation
stack created in moto that carries the same outputs, by ``--stack NAME``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from untag_operator.cli import main

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = ROOT / "events"


@pytest.fixture
def outputs(stack, tmp_path) -> str:
    """The stack's outputs as the file `--outputs` reads (the shape `sam list stack-outputs` prints)."""
    path = tmp_path / "outputs.json"
    path.write_text(
        json.dumps(
            [
                {"OutputKey": "IntakeQueueUrl", "OutputValue": stack.queue_url},
                {"OutputKey": "ActivityTableName", "OutputValue": stack.table_name},
                {"OutputKey": "ResultTopicArn", "OutputValue": stack.topic_arn},
                {"OutputKey": "DeadLetterQueueUrl", "OutputValue": stack.dlq_url},
            ]
        )
    )
    return str(path)


def untag(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI; its exit code, stdout and stderr (what the functions logged before is dropped)."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def queued(stack, url: str | None = None) -> list[dict]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=url or stack.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    ).get("Messages", [])
    return messages


# --- submit ------------------------------------------------------------------------------------------


def test_submit_from_flags_sends_the_request_and_prints_its_id(stack, outputs, capsys):
    code, out, err = untag(
        capsys,
        "--outputs",
        outputs,
        "submit",
        "--lists",
        "l-1,l-2",
        "--exclude",
        "c-9",
        "--remove-tags",
        "t-1,t-2",
        "--request-id",
        "ops-1",
        "--metadata",
        '{"ticket": "OPS-7"}',
    )
    assert code == 0, err
    assert out == "ops-1\n"
    assert "untag status ops-1" in err
    [message] = queued(stack)
    assert json.loads(message["Body"]) == {
        "request_id": "ops-1",
        "source": {"list_ids": ["l-1", "l-2"]},
        "exclude": {"contact_ids": ["c-9"]},
        "tag_ids": ["t-1", "t-2"],
        "metadata": {"ticket": "OPS-7"},
    }


@pytest.mark.parametrize(
    "flag, source",
    [
        (["--contacts", "c-1, c-2"], {"contact_ids": ["c-1", "c-2"]}),
        (["--tags", "t-old"], {"tag_ids": ["t-old"]}),
        (["--all-active"], {"all_active_contacts": True}),
        (["--new-subscribers"], {"new_subscriber": True}),
    ],
)
def test_submit_without_request_id_prints_the_message_id_the_service_will_use(stack, outputs, capsys, flag, source):
    code, out, err = untag(capsys, "submit", *flag, "--remove-tags", "t-1", "--outputs", outputs)
    assert code == 0, err
    [message] = queued(stack)
    assert out.strip() == message["MessageId"]
    assert json.loads(message["Body"]) == {"source": source, "tag_ids": ["t-1"]}


def test_submit_a_file_sends_it_as_is_and_prints_the_envelope_id(stack, outputs, capsys, tmp_path):
    record = json.loads((EVENTS_DIR / "intake-eventbridge-envelope.json").read_text())["Records"][0]
    path = tmp_path / "request.json"
    path.write_text(record["body"])
    code, out, err = untag(capsys, "--outputs", outputs, "submit", "--file", str(path))
    assert code == 0, err
    assert out.strip() == json.loads(record["body"])["id"]
    [message] = queued(stack)
    assert message["Body"] == record["body"]


def test_an_invalid_request_is_refused_with_every_error_and_nothing_is_sent(stack, outputs, capsys):
    code, out, err = untag(
        capsys,
        "--outputs",
        outputs,
        "submit",
        "--contacts",
        "c-1,../x",
        "--exclude",
        "c-2",
        "--remove-tags",
        "t-1",
        "--request-id",
        "bad id",
    )
    assert code == 2 and out == ""
    assert "nothing was sent" in err
    assert "request_id: must be" in err and "source.contact_ids: ids must match" in err
    assert queued(stack) == []


def test_submit_usage_errors(stack, outputs, capsys, tmp_path):
    code, _, err = untag(capsys, "--outputs", outputs, "submit", "--contacts", "c-1")
    assert code == 2 and "--remove-tags" in err
    code, _, err = untag(
        capsys, "--outputs", outputs, "submit", "--contacts", "c-1", "--remove-tags", "t-1", "--metadata", "{not json"
    )
    assert code == 2 and "--metadata is not valid JSON" in err
    path = tmp_path / "r.json"
    path.write_text("{}")
    code, _, err = untag(capsys, "--outputs", outputs, "submit", "--file", str(path), "--remove-tags", "t-1")
    assert code == 2 and "drop --remove-tags" in err
    code, out, err = untag(capsys, "submit", "--contacts", "c-1", "--remove-tags", "t-1", "--dry-run")
    assert code == 0 and json.loads(out) == {"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]}
    assert queued(stack) == []


# --- status, pending: through a real pipeline run -----------------------------------------------------


def test_status_and_pending_follow_a_request_to_its_result(pipeline, outputs, capsys):
    code, out, _ = untag(
        capsys,
        "--outputs",
        outputs,
        "submit",
        "--contacts",
        "c-1,c-2",
        "--remove-tags",
        "t-1",
        "--request-id",
        "cli-1",
        "--metadata",
        '{"origin": "cli"}',
    )
    assert code == 0 and out.strip() == "cli-1"

    # Sent but not read by the intake yet: unknown (exit 3), with a hint
    code, _, err = untag(capsys, "--outputs", outputs, "status", "cli-1")
    assert code == 3 and "unknown request id 'cli-1'" in err and "batching window" in err

    # Read by the intake: pending, its activity on the poller's work list
    assert pipeline.intake_once() == 1
    code, out, err = untag(capsys, "--outputs", outputs, "status", "cli-1", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["status"] == "pending" and report["state"] is None and report["event"] is None
    assert report["planned_activities"] == 1 and 0 <= report["percent_done"] < 100
    [activity] = report["activities"]
    assert report["metadata"] == {"origin": "cli"}
    code, out, _ = untag(capsys, "--outputs", outputs, "pending")
    assert code == 0
    assert "1 activity on the poller's work list" in out and activity["activity_id"] in out and "cli-1" in out
    code, out, _ = untag(capsys, "--outputs", outputs, "pending", "--json")
    assert [item["activity_id"] for item in json.loads(out)["activities"]] == [activity["activity_id"]]
    code, out, _ = untag(capsys, "--outputs", outputs, "status", "cli-1")
    assert "pending (1 of 1 activities created)" in out and activity["activity_id"] in out

    # Finished: the final state, 100 %, and the stored result event, the one published
    assert pipeline.run_until_settled(1, timeout=30)
    code, out, _ = untag(capsys, "--outputs", outputs, "status", "cli-1", "--wait", "--timeout", "5")
    assert code == 0
    assert "state      completed" in out and "progress   100%" in out
    code, out, _ = untag(capsys, "--outputs", outputs, "status", "cli-1", "--json")
    report = json.loads(out)
    published = {key: value for key, value in pipeline.results[0].items() if key != "_attributes"}
    assert report["state"] == "completed" and report["percent_done"] == 100 and report["event"] == published
    assert report["activities"][0]["state"] == "completed"
    code, out, _ = untag(capsys, "--outputs", outputs, "pending")
    assert out.strip() == "nothing pending: the poller's work list is empty"


def test_status_of_a_rejected_request_shows_its_errors(pipeline, outputs, capsys):
    pipeline.submit([json.dumps({"request_id": "cli-bad", "source": {"contact_ids": ["c-1"]}, "tag_ids": []})])
    assert pipeline.run_until_settled(1, timeout=10)
    code, out, _ = untag(capsys, "--outputs", outputs, "status", "cli-bad")
    assert code == 0
    assert "rejected (never sent to Constant Contact)" in out and "tag_ids: must not be empty" in out
    report = json.loads(untag(capsys, "--outputs", outputs, "status", "cli-bad", "--json")[1])
    assert report["state"] == "rejected" and report["event"]["event_type"] == "untag.rejected"


def test_status_wait_gives_up_after_its_timeout(stack, outputs, capsys):
    started = time.monotonic()
    code, _, err = untag(
        capsys, "--outputs", outputs, "status", "never-sent", "--wait", "--timeout", "0.3", "--interval", "0.1"
    )
    assert code == 3 and "unknown request id 'never-sent'" in err
    assert time.monotonic() - started < 3


# --- dlq ------------------------------------------------------------------------------------------------


def test_dlq_list_and_redrive(stack, outputs, capsys):
    sqs = boto3.client("sqs")
    body = json.dumps({"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]})
    first_id = sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=body)["MessageId"]
    code, out, err = untag(capsys, "--outputs", outputs, "dlq", "list")
    assert code == 0 and json.loads(out)["message_id"] == first_id and json.loads(out)["body"] == body
    assert "1 message(s) in the dead-letter queue" in err
    code, out, _ = untag(capsys, "--outputs", outputs, "dlq", "redrive")
    assert code == 0 and out.strip() == "moved 1 message(s) back to the intake queue"
    [message] = queued(stack)
    assert message["Body"] == body
    assert message["MessageAttributes"]["request_id"]["StringValue"] == first_id  # the id it was first known by
    assert queued(stack, stack.dlq_url) == []


def test_redrive_sends_batches_within_1_mib_and_leaves_what_the_intake_queue_cannot_take(stack, outputs, capsys):
    # Given six messages of about 200 KB in the DLQ (in one SendMessageBatch: over its 1 MiB) and one of
    # 300 KB (the DLQ takes up to 1 MiB; the intake queue 256 KiB)
    sqs = boto3.client("sqs")
    pad = {"pad": "x" * 200_000}
    bodies = [
        json.dumps({"source": {"contact_ids": [f"c-{n}"]}, "tag_ids": ["t-1"], "metadata": pad}) for n in range(6)
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=body)
    too_big = sqs.send_message(QueueUrl=stack.dlq_url, MessageBody="y" * 300_000)["MessageId"]
    # When the operator redrives the DLQ
    code, out, err = untag(capsys, "--outputs", outputs, "dlq", "redrive")
    # Then the six are back in the intake queue; the big one stays in the DLQ, visible, and the reason is given
    assert out.strip() == "moved 6 message(s) back to the intake queue"
    assert code == 1 and "1 message(s) stay in the dead-letter queue" in err
    assert f"{too_big}: 300,052 bytes, more than the intake queue takes (MaximumMessageSize 262,144)" in err
    assert sorted(message["Body"] for message in queued(stack)) == sorted(bodies)
    assert [message["MessageId"] for message in queued(stack, stack.dlq_url)] == [too_big]


# --- results --follow -----------------------------------------------------------------------------------


def _follow_in_background(capsys, *argv: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("code", main(list(argv))), daemon=True)
    thread.start()
    sns = boto3.client("sns")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until its temporary queue is subscribed
        subscriptions = sns.list_subscriptions()["Subscriptions"]
        if any("untag-cli-results-" in subscription["Endpoint"] for subscription in subscriptions):
            return thread, outcome
        time.sleep(0.02)
    raise AssertionError("results --follow did not subscribe")


def _publish(stack, *states: str) -> list[dict]:
    from untag.publisher import SnsPublisher
    from untag.records import Publication
    from untag.result_event import event_id

    sns = boto3.client("sns")
    events = [
        {
            "schema_version": "1",
            "event_id": event_id(f"r-{n}", state),
            "event_type": f"untag.{state}",
            "request_id": f"r-{n}",
            "state": state,
            "tag_ids": ["t-1"],
            "source_type": "contact_ids",
            "activities": [],
            "errors": [] if state == "completed" else ["why"],
            "metadata": None,
            "received_at": "2026-11-26T10:00:00Z",
            "finished_at": "2026-11-26T10:03:10Z",
        }
        for n, state in enumerate(states)
    ]
    publications = [Publication(e["request_id"], json.dumps(e), e["event_type"], e["state"]) for e in events]
    assert all(SnsPublisher(lambda: sns, stack.topic_arn).publish(publications))
    return events


def test_results_follow_prints_events_then_removes_its_queue_and_subscription(stack, outputs, capsys):
    thread, outcome = _follow_in_background(
        capsys,
        "--outputs",
        outputs,
        "results",
        "--follow",
        "--json",
        "--max-events",
        "2",
        "--timeout",
        "20",
        "--wait-seconds",
        "1",
    )
    events = _publish(stack, "completed", "failed")
    thread.join(25)
    assert not thread.is_alive() and outcome["code"] == 0
    out = capsys.readouterr().out
    assert [json.loads(line) for line in out.splitlines()] == events
    subscriptions = boto3.client("sns").list_subscriptions()["Subscriptions"]
    assert not any("untag-cli-results-" in subscription["Endpoint"] for subscription in subscriptions)
    assert not any("untag-cli-results-" in url for url in boto3.client("sqs").list_queues().get("QueueUrls", []))


def test_results_follow_with_state_uses_a_filter_policy(stack, outputs, capsys):
    thread, outcome = _follow_in_background(
        capsys,
        "--outputs",
        outputs,
        "results",
        "--follow",
        "--state",
        "failed,timed_out",
        "--max-events",
        "2",
        "--timeout",
        "10",
        "--wait-seconds",
        "1",
    )
    [subscription] = [
        s for s in boto3.client("sns").list_subscriptions()["Subscriptions"] if "untag-cli-results-" in s["Endpoint"]
    ]
    attributes = boto3.client("sns").get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])[
        "Attributes"
    ]
    assert json.loads(attributes["FilterPolicy"]) == {"state": ["failed", "timed_out"]}
    _publish(stack, "completed", "failed", "rejected", "timed_out")
    thread.join(10)
    assert outcome["code"] == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1:3] for line in lines] == [["failed", "r-1"], ["timed_out", "r-3"]]


def test_results_usage_errors(stack, outputs, capsys):
    code, _, err = untag(capsys, "--outputs", outputs, "results")
    assert code == 2 and "--follow" in err
    code, _, err = untag(capsys, "--outputs", outputs, "results", "--follow", "--state", "done")
    assert code == 2 and "not a result state" in err


# --- the target: --stack, --outputs, and clear errors ----------------------------------------------------


def _cloudformation_stack(stack, name: str = "cc-untag-test") -> None:
    outputs = {
        "IntakeQueueUrl": stack.queue_url,
        "ActivityTableName": stack.table_name,
        "ResultTopicArn": stack.topic_arn,
        "DeadLetterQueueUrl": stack.dlq_url,
    }
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},  # a stack needs one resource
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_stack_name_reads_the_outputs_of_the_deployed_stack(stack, capsys):
    _cloudformation_stack(stack)
    code, out, err = untag(
        capsys, "submit", "--contacts", "c-1", "--remove-tags", "t-1", "--request-id", "s-1", "--stack", "cc-untag-test"
    )
    assert code == 0 and out.strip() == "s-1", err
    assert json.loads(queued(stack)[0]["Body"])["request_id"] == "s-1"
    code, _, err = untag(capsys, "--stack", "cc-untag-test", "status", "s-2")
    assert code == 3 and "unknown request id 's-2'" in err


def test_a_wrong_stack_name_is_a_clear_error(stack, capsys):
    code, out, err = untag(capsys, "--stack", "no-such-stack", "pending")
    assert code == 1 and out == ""
    assert err.strip() == (
        "untag: error: stack 'no-such-stack' not found in us-east-1 (check the name, and --region "
        "or AWS_DEFAULT_REGION)"
    )


def test_missing_credentials_are_a_clear_error(outputs, capsys, monkeypatch, tmp_path):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for argv in (
        ["--outputs", outputs, "status", "r-1"],
        ["--stack", "cc-untag-dev", "pending"],
        ["--outputs", outputs, "submit", "--contacts", "c-1", "--remove-tags", "t-1"],
    ):
        code, out, err = untag(capsys, *argv)
        assert code == 1 and out == "", argv
        assert err.startswith("untag: error: no AWS credentials found"), err


def test_target_errors(stack, outputs, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("UNTAG_STACK", raising=False)
    monkeypatch.delenv("UNTAG_OUTPUTS", raising=False)
    code, _, err = untag(capsys, "pending")
    assert code == 2 and "give --stack NAME or --outputs FILE" in err
    code, _, err = untag(capsys, "pending", "--stack", "a", "--outputs", outputs)
    assert code == 2 and "not both" in err
    code, _, err = untag(capsys, "pending", "--outputs", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read the outputs file" in err
    (tmp_path / "bad.json").write_text("{")
    code, _, err = untag(capsys, "pending", "--outputs", str(tmp_path / "bad.json"))
    assert code == 1 and "is not valid JSON" in err
    (tmp_path / "partial.json").write_text(json.dumps({"IntakeQueueUrl": stack.queue_url}))
    code, _, err = untag(capsys, "pending", "--outputs", str(tmp_path / "partial.json"), "--region", "us-east-1")
    assert code == 1 and "has no output ActivityTableName" in err
    (tmp_path / "gone.json").write_text(
        json.dumps({"ActivityTableName": "deleted-table", "ResultTopicArn": stack.topic_arn})
    )
    code, _, err = untag(capsys, "status", "r-1", "--outputs", str(tmp_path / "gone.json"))
    assert code == 1 and "the stack's resource does not exist" in err
    monkeypatch.setenv("UNTAG_OUTPUTS", outputs)  # the environment names the stack
    code, out, _ = untag(capsys, "pending")
    assert code == 0 and "nothing pending" in out


def test_runs_as_a_module():
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)])}
    answer = subprocess.run(
        [sys.executable, "-m", "untag_operator", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=environment,
    )
    assert answer.returncode == 0 and "submit" in answer.stdout and "results" in answer.stdout


def test_preview_sends_a_dry_run_and_prints_what_it_would_do(pipeline, simulator, outputs, capsys):
    from devkit import sample_account

    sample_account.seed(simulator)
    argv = [
        "--outputs",
        outputs,
        "preview",
        "--lists",
        "l-promotions",
        "--exclude-emails",
        "ana@example.com",
        "--remove-tag-names",
        "vip,gone",
        "--request-id",
        "pv-1",
        "--json",
        "--timeout",
        "30",
        "--interval",
        "0.1",
    ]
    finished: dict = {}
    thread = threading.Thread(target=lambda: finished.update(code=main(argv)))
    capsys.readouterr()
    thread.start()
    while thread.is_alive():  # the intake reads the queue meanwhile
        pipeline.intake_once()
        thread.join(0.1)

    assert finished["code"] == 0
    out = capsys.readouterr().out  # (with the intake's own log lines: it runs in this process)
    report, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "request_id"') :])
    event = report["event"]
    assert event["state"] == "previewed" and event["tag_ids"] == ["t-vip"]
    assert event["preview"] == {
        "activities": 1,
        "contacts": 2,  # bo and carla are on l-promotions
        "unresolved": {"tag_names": ["gone"], "emails": {"count": 0, "first": []}},
    }
    assert simulator.count("POST", "/v3/activities/contacts_taggings_remove") == 0


def test_submit_builds_requests_in_the_crms_words(stack, outputs, capsys):
    code, out, err = untag(
        capsys,
        "--outputs",
        outputs,
        "submit",
        "--emails",
        "Ana@Example.com, bo@example.com",
        "--remove-tag-names",
        "Churned-2026",
        "--request-id",
        "by-name-1",
    )
    assert (code, out.strip()) == (0, "by-name-1"), err
    [message] = queued(stack)
    assert json.loads(message["Body"]) == {
        "request_id": "by-name-1",
        "source": {"emails": ["Ana@Example.com", "bo@example.com"]},
        "tag_names": ["Churned-2026"],
    }
