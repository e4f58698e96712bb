"""The local runner (`make run`): inputs, display, whole runs as a person starts them, the redrive policy."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from devkit.runner.display import Display, FunctionOutput
from devkit.runner.inputs import SAMPLE_EVENT_FILES, RunnerError, generate_requests, read_requests, sample_requests
from devkit.runner.loop import drive
from devkit.runner.report import failure_message
from devkit.runner.tracker import Tracker, expected_events
from devkit.simulator import TAGGINGS_REMOVE, ConstantContactSimulator

ROOT = Path(__file__).resolve().parents[2]

SMALL_REQUESTS = [
    {"request_id": "run-1", "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-a"]},
    {"request_id": "run-2", "source": {"contact_ids": ["c-2"]}, "tag_ids": ["t-a"]},
    {"request_id": "run-3", "source": {"list_ids": ["l-1"]}, "exclude": {"contact_ids": ["c-9"]}, "tag_ids": ["t-b"]},
    {"source": {"new_subscriber": True}, "tag_ids": ["t-c"]},  # no request_id: known by its message id
    {"request_id": "run-bad", "source": {"contact_ids": ["c-1"], "list_ids": ["l-1"]}, "tag_ids": ["t-a"]},
]


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    lines = [json.dumps(request) for request in SMALL_REQUESTS]
    path.write_text("\n".join(lines[:2]) + "\n\n   \n" + "\n".join(lines[2:]) + "\n", encoding="utf-8")
    return path


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m devkit.runner ARGS` as `make run` starts it (stdout and stderr not terminals)."""
    # The domain package as `make` makes it importable (the dev venv has the project installed in editable mode)
    path = os.pathsep.join(filter(None, [str(ROOT / "layers" / "shared"), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "devkit.runner", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path},
    )


def summary_value(stdout: str, label: str) -> str:
    match = re.search(rf"^\s+{re.escape(label)}\s+(.+?)\s*$", stdout, re.MULTILINE)
    assert match, f"no {label!r} line in the summary:\n{stdout}"
    return match.group(1)


def printed_events(stdout: str) -> list[dict]:
    """The result events the runner printed: pretty JSON documents between "Result events (N)" and the summary."""
    text = stdout.split("Result events", 1)[1].split("\n", 1)[1].split("\nSummary\n", 1)[0]
    decoder, events, position = json.JSONDecoder(), [], 0
    while text[position:].strip():
        position += len(text[position:]) - len(text[position:].lstrip())
        event, position = decoder.raw_decode(text, position)
        events.append(event)
    return events


@pytest.fixture
def moto_endpoint():
    """A second AWS endpoint, standing in for an account the runner did not start (empty: moto's state is
    per process, shared by every server and mock in it)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
    yield url
    requests.post(f"{url}/moto-api/reset", timeout=10)
    server.stop()


# --------------------------------------------------------------------------- inputs


def test_the_default_input_is_every_body_of_the_sample_events():
    bodies = sample_requests()
    records = [
        record for name in SAMPLE_EVENT_FILES for record in json.loads((ROOT / "events" / name).read_text())["Records"]
    ]
    assert bodies == [record["body"] for record in records]


def test_a_request_file_gives_one_body_per_non_blank_line(request_file: Path):
    bodies = read_requests(request_file)
    assert [json.loads(body) for body in bodies] == SMALL_REQUESTS


def test_an_empty_or_missing_request_file_is_refused_with_a_clear_message(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(RunnerError, match="holds no requests"):
        read_requests(empty)
    with pytest.raises(RunnerError, match="cannot read"):
        read_requests(tmp_path / "missing.jsonl")


def test_generated_load_is_n_single_contact_requests_sharing_a_tag_plus_four_others():
    bodies = [json.loads(body) for body in generate_requests(50, "x")]
    single = [body for body in bodies if len(body["source"].get("contact_ids", ())) == 1 and len(body["source"]) == 1]
    assert len(bodies) == 54 and len(single) == 50
    assert {tuple(body["tag_ids"]) for body in single} == {("t-generated",)}
    assert len({body["request_id"] for body in bodies}) == 54


def test_expected_events_follow_the_service_reading_of_each_message():
    bodies = [json.dumps(request) for request in SMALL_REQUESTS] + [json.dumps(SMALL_REQUESTS[0])]  # a duplicate
    expected = expected_events(bodies, [f"m-{n}" for n in range(len(bodies))])
    assert sorted(key[:2] for key in expected) == sorted(
        [("request", "run-1"), ("request", "run-2"), ("request", "run-3"), ("request", "m-3"), ("rejected", "run-bad")]
    )


# --------------------------------------------------------------------------- display


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_is_one_line_redrawn_and_log_lines_go_above_it():
    stream = Terminal()
    display = Display(stream, live=True, started=0.0)
    display.progress("1/3 finished")
    display.progress("2/3 finished")
    display.log("a warning")
    display.close()
    text = stream.getvalue()
    assert text.count("\n") == 2  # the log line and the final newline: progress is redrawn with \r
    assert "\r" in text and text.rstrip().endswith("2/3 finished")


def test_function_output_drops_metric_lines_and_shortens_log_lines():
    stream = io.StringIO()
    output = FunctionOutput(Display(stream, live=False, started=0.0), verbose=False, fallback=io.StringIO())
    output.write('{"_aws":{"CloudWatchMetrics":[]},"ConstantContactCalls":[1.0]}\n{"level":"WARNING",')
    output.write('"message":"backing off","function_name":"untag-intake","location":"x:1","attempt":2}\n')
    assert output.metric_lines == 1
    assert stream.getvalue().split("] ", 1)[1] == 'untag-intake WARNING: backing off {"attempt":2}\n'


# --------------------------------------------------------------------------- whole runs


@pytest.mark.slow
def test_a_request_file_runs_to_the_end_and_the_summary_says_so(request_file: Path):
    result = run_cli("--requests", str(request_file), "--speed", "3", "--timeout", "90")

    assert result.returncode == 0, result.stderr
    assert "OK: all 5 requests reached a final state." in result.stdout
    assert summary_value(result.stdout, "requests") == "5"
    assert summary_value(result.stdout, "completed") == "4"
    assert summary_value(result.stdout, "rejected") == "1"
    assert summary_value(result.stdout, "dead-letter queue depth") == "0"
    assert summary_value(result.stdout, "throttled (429)") == "0"
    assert re.search(r"^\s+create \(POST contacts_taggings_remove\)\s+201\s+\d+$", result.stdout, re.MULTILINE)
    assert sorted(event["state"] for event in printed_events(result.stdout)) == ["completed"] * 4 + ["rejected"]
    # The functions' own output stays out of the way: no JSON log or EMF metric line reaches the terminal.
    assert not [line for line in result.stderr.splitlines() if '"_aws"' in line or line.startswith("{")]
    assert "finished (100%)" in result.stderr


@pytest.mark.slow
def test_a_request_that_cannot_finish_in_time_fails_the_run_with_a_clear_message(request_file: Path):
    result = run_cli("--requests", str(request_file), "--speed", "0.2", "--timeout", "1", "--quiet")

    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(
        r"FAILED: 4 of 5 requests reached no final state within the 1 s timeout \(4 waiting for "
        r"Constant Contact to finish its activities",
        result.stderr,
    ), result.stderr
    assert summary_value(result.stdout, "no final state") == "4"
    assert "OK:" not in result.stdout


@pytest.mark.slow
def test_aws_endpoint_creates_the_template_resources_there_and_refuses_reused_request_ids(
    request_file: Path, moto_endpoint: str
):
    first = run_cli("--requests", str(request_file), "--speed", "3", "--quiet", "--aws-endpoint", moto_endpoint)

    assert first.returncode == 0, first.stderr
    assert f"AWS: {moto_endpoint} (resources from template.yaml)" in first.stdout
    queues = boto3.client("sqs", endpoint_url=moto_endpoint).list_queues()["QueueUrls"]
    assert any(url.endswith("/untag-IntakeQueue") for url in queues)
    assert not any("untag-results-" in url for url in queues)  # the runner's results queue is removed

    again = run_cli("--requests", str(request_file), "--quiet", "--aws-endpoint", moto_endpoint)
    assert again.returncode == 2
    assert "already processed by this stack" in again.stderr


@pytest.mark.slow
def test_rehearsal_uses_a_deployed_stack_and_a_real_api(request_file: Path, moto_endpoint: str, tmp_path: Path):
    from devkit.stack import provision

    deployed = provision(endpoint_url=moto_endpoint, prefix="cc-untag-dev")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            [  # as `sam list stack-outputs --output json` prints them
                {"OutputKey": "IntakeQueueUrl", "OutputValue": deployed.queue_url},
                {"OutputKey": "IntakeQueueArn", "OutputValue": deployed.queue_arn},
                {"OutputKey": "DeadLetterQueueUrl", "OutputValue": deployed.dlq_url},
                {"OutputKey": "ActivityTableName", "OutputValue": deployed.table_name},
                {"OutputKey": "ResultTopicArn", "OutputValue": deployed.topic_arn},
                {"OutputKey": "TokenSecretArn", "OutputValue": deployed.secret_id},
            ]
        ),
        encoding="utf-8",
    )
    with ConstantContactSimulator(seconds_to_finish=1.0) as api:  # stands in for api.cc.email
        tokens = tmp_path / "tokens.json"
        tokens.write_text(json.dumps(api.issue_tokens()), encoding="utf-8")

        result = run_cli(
            "--requests",
            str(request_file),
            "--quiet",
            "--stack-outputs",
            str(outputs),
            "--aws-endpoint",
            moto_endpoint,
            "--cc-base-url",
            api.base_url,
            "--token-file",
            str(tokens),
            "--token-url",
            api.token_url,
        )

        assert result.returncode == 0, result.stderr
        assert api.count("POST", TAGGINGS_REMOVE, 201) >= 3
        assert api.malformed == []
    assert summary_value(result.stdout, "completed") == "4"
    assert "Constant Contact calls: not recorded (real API" in result.stdout
    table = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    assert "Item" in table.get_item(
        TableName=deployed.table_name, Key={"pk": {"S": "REQUEST#run-1"}, "sk": {"S": "REQUEST"}}
    )


@pytest.mark.slow
def test_tokens_refreshed_during_a_rehearsal_with_the_embedded_aws_are_written_back_to_the_token_file(
    request_file: Path, tmp_path: Path
):
    with ConstantContactSimulator(seconds_to_finish=1.0, access_token_ttl=60) as api:  # stands in for api.cc.email
        issued = api.issue_tokens()  # expires within the service's refresh margin: refreshed on first use
        tokens = tmp_path / "tokens.json"
        tokens.write_text(json.dumps(issued), encoding="utf-8")

        result = run_cli(
            "--requests",
            str(request_file),
            "--quiet",
            "--cc-base-url",
            api.base_url,
            "--token-file",
            str(tokens),
            "--token-url",
            api.token_url,
        )

        assert result.returncode == 0, result.stderr
        assert api.token_refreshes == 1
        saved = json.loads(tokens.read_text(encoding="utf-8"))
        assert saved["refresh_token"] != issued["refresh_token"]  # the rotated one, the only one still valid
        answer = requests.post(
            api.token_url,
            auth=(saved["client_id"], saved["client_secret"]),
            timeout=10,
            data={"grant_type": "refresh_token", "refresh_token": saved["refresh_token"]},
        )
        assert answer.status_code == 200, answer.text
    assert f"wrote the new ones to {tokens}" in result.stderr
    assert tokens.stat().st_mode & 0o077 == 0


def test_stack_outputs_without_a_real_api_is_refused():
    result = run_cli("--stack-outputs", "outputs.json")
    assert result.returncode == 2
    assert "--stack-outputs needs --cc-base-url" in result.stderr


# --------------------------------------------------------------------------- the redrive policy


def test_a_message_the_intake_always_fails_ends_in_the_dlq_and_the_run_says_it_cannot_finish(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
):
    from devkit.pipeline import LocalPipeline
    from devkit.stack import provision

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    stack = provision(parameters={"MaxReceiveCount": 5})
    overrides = {
        "CC_API_BASE_URL": "http://127.0.0.1:9/v3",
        "CC_TOKEN_URL": "http://127.0.0.1:9/token",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    for name in {**stack.function_environment("IntakeFunction"), **overrides}:
        monkeypatch.setenv(name, "")  # restored after the test
    pipeline = LocalPipeline(stack, environment=overrides, batch_size=10)
    attempts = []

    def crashing_intake(event, context):
        attempts.append(len(event["Records"]))
        raise RuntimeError("the intake crashed")

    pipeline.intake = crashing_intake
    bodies = [json.dumps(SMALL_REQUESTS[0])]
    tracker = Tracker(expected_events(bodies, pipeline.submit(bodies)), stack.table_name, boto3.client("dynamodb"))
    display = Display(io.StringIO(), live=False, started=0.0)

    outcome = drive(pipeline, tracker, display, poll_interval=0.1, timeout=30)
    pipeline.close()

    assert outcome.reason == "lost"
    assert len(attempts) == 5  # maxReceiveCount deliveries, then SQS moved it
    assert pipeline.queue_depth(stack.dlq_url) == 1
    assert "dead-letter queue depth 1" in failure_message(tracker, outcome, 30, 1)
