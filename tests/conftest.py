"""Shared fixtures: AWS in moto built from template.yaml, the Constant Contact simulator on 127.0.0.1, the pipeline."""

from __future__ import annotations

import json
import os
import threading

import pytest

pytest_plugins = ["tests.aws_rules.limits", "tests.aws_rules.iam"]  # AWS's rules moto lacks: docs/aws-*.md

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ConstantContactUntag")
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ[_name] = "testing"
os.environ.pop("AWS_PROFILE", None)

FAST = {
    # Tests run against a simulator without the real API's pacing needs.
    "CC_REQUESTS_PER_SECOND": "200",
    "FIRST_POLL_DELAY_SECONDS": "0",
    # A request whose activity could not be created is tried again by the next driver at once.
    "CREATE_RETRY_SECONDS": "0",
}


@pytest.fixture
def aws(monkeypatch):
    """AWS in moto, each request atomic as the real services process it (DynamoDB evaluates a conditional
    write against the item as it is): moto's in-memory backends are not thread-safe, and tests that run
    functions concurrently (two pollers at once) must not see races real AWS cannot have."""
    from moto import mock_aws
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    process = BotocoreStubber.process_request

    def atomic(self, request):
        with lock:
            return process(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", atomic)
    with mock_aws():
        yield


@pytest.fixture
def stack(aws):
    from devkit.stack import provision

    return provision()


@pytest.fixture
def simulator():
    from devkit.simulator import ConstantContactSimulator

    with ConstantContactSimulator(rate_limit_per_second=None, reads_to_finish=2) as sim:
        yield sim
    assert sim.malformed == [], sim.malformed


@pytest.fixture
def tokens(stack, simulator):
    """Fill the token secret the way an operator does after deploying."""
    import boto3

    value = simulator.issue_tokens()
    boto3.client("secretsmanager").put_secret_value(SecretId=stack.secret_id, SecretString=json.dumps(value))
    return value


@pytest.fixture
def pipeline(stack, simulator, tokens, monkeypatch):
    from devkit.pipeline import LocalPipeline

    overrides = {**FAST, "CC_API_BASE_URL": simulator.base_url, "CC_TOKEN_URL": simulator.token_url}
    for name in {**stack.function_environment("IntakeFunction"), **overrides}:
        monkeypatch.setenv(name, "")  # restored after the test
    return LocalPipeline(stack, environment=overrides, batch_size=10)
