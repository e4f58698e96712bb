"""Unit tests of untag.observability inside Lambda: Lambda's own tracing, no tracing SDK (docs/design.md, "Tracing")."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from untag.observability import lambda_entry, logger

ROOT = Path(__file__).resolve().parents[2]
TRACE_HEADER = "Root=1-6a1b2c3d-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"


def lambda_context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="intake",
        function_version="$LATEST",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:intake",
        aws_request_id="req-1",
        get_remaining_time_in_millis=lambda: 60_000,
    )


@pytest.mark.parametrize("function", ["intake", "poller"])
def test_inside_lambda_a_handler_loads_no_tracing_sdk_and_no_aws_sdk(function):
    # Given a fresh interpreter configured as Lambda runs the function (Tracing: Active)
    code = (
        "import sys, json; import app; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('aws_xray_sdk', 'opentelemetry', 'wrapt', 'boto3') or m.startswith('botocore.'))))"
    )
    environment = {
        **os.environ,
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / function),
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers" / "shared")]),
    }
    # When the handler module is imported (the cold start)
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT / "functions" / function,
    ).stdout
    # Then no tracing SDK is loaded, and no AWS SDK client code either (clients are created on first use)
    assert json.loads(loaded) == []


def test_every_log_line_of_an_invocation_carries_lambdas_trace_id(monkeypatch):
    # Given an invocation Lambda traces (it sets the trace header for each invocation)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE_HEADER)
    output = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", output)

    @lambda_entry
    def handler(event, context):
        logger.info("working", extra={"request_id": "r-1"})
        return {"ok": True}

    # When the handler runs and logs
    assert handler({}, lambda_context()) == {"ok": True}
    # Then its log line names the invocation's X-Ray trace, so logs and the trace find each other
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    (line,) = [line for line in lines if line.get("message") == "working"]
    assert line["xray_trace_id"] == "1-6a1b2c3d-0123456789abcdef01234567"
    assert line["function_request_id"] == "req-1"
    assert line["request_id"] == "r-1"
