"""`make bench`: how frugal the service is with Constant Contact and AWS, how fast its handlers are, how light its cold start.

Runs in-process against moto (resources from template.yaml) and the Constant Contact simulator
with no latency and no rate limit, prints a table and writes bench/results.json:

1. Constant Contact POSTs for 10,000 single-contact requests removing the same tag, at the
   template's intake batch size (target <= 1.05 x ceil(10,000 / 500) = 21; naive: 10,000).
2. GET calls of one poller run with 2,000 activities pending (target <= 6; naive: 2,000).
3. Intake and poller throughput, records (requests) per second.
4. Cold import time of each handler module in a fresh interpreter, over a bare `import boto3`.
5. AWS API calls per request (DynamoDB, SNS, Secrets Manager) over scenario 1.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ[_name] = "bench"
QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}


def sqs_records(bodies: list[str]) -> list[dict]:
    now = str(int(time.time() * 1000))
    return [{"messageId": str(uuid.uuid4()), "receiptHandle": "rh", "body": body,
             "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": now},
             "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
             "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:untag-IntakeQueue"} for body in bodies]


class AwsCalls:
    """Counts AWS API calls by service through botocore's event hooks."""

    def __init__(self):
        import boto3

        self.counts: Counter[str] = Counter()
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call", self._count)

    def _count(self, model, **_):
        self.counts[model.service_model.service_name] += 1


def run_pipeline_scenarios() -> dict:
    from moto import mock_aws

    from devkit.pipeline import LambdaContext, load_handler, template_parameter
    from devkit.simulator import ConstantContactSimulator
    from devkit.stack import provision

    results = {}
    with mock_aws(), ConstantContactSimulator(rate_limit_per_second=None, daily_quota=None, reads_to_finish=1) as sim:
        import boto3

        calls = AwsCalls()
        stack = provision()
        boto3.client("secretsmanager").put_secret_value(SecretId=stack.secret_id,
                                                        SecretString=json.dumps(sim.issue_tokens()))
        os.environ.update(stack.function_environment("PollerFunction"))
        os.environ.update(stack.function_environment("IntakeFunction"))
        os.environ.update({"CC_API_BASE_URL": sim.base_url, "CC_TOKEN_URL": sim.token_url,
                           "CC_REQUESTS_PER_SECOND": "1000", "FIRST_POLL_DELAY_SECONDS": "0", **QUIET})
        intake = load_handler(stack, "IntakeFunction")
        poller = load_handler(stack, "PollerFunction")
        batch_size = int(template_parameter(stack, "IntakeBatchSize"))

        # 1. 10,000 single-contact requests removing the same tag
        requests = 10_000
        bodies = [json.dumps({"request_id": f"bench-{n}", "source": {"contact_ids": [f"c{n}"]}, "tag_ids": ["t1"]})
                  for n in range(requests)]
        calls.counts.clear()
        started = time.perf_counter()
        for start in range(0, requests, batch_size):
            answer = intake({"Records": sqs_records(bodies[start:start + batch_size])}, LambdaContext("intake", 60))
            assert not answer["batchItemFailures"], answer
        intake_seconds = time.perf_counter() - started
        posts = sim.count("POST", "/v3/activities/contacts_taggings_remove")
        started = time.perf_counter()
        runs = 0
        while True:
            runs += 1
            report = poller({}, LambdaContext("poller", 120))
            if report["pending_activities"] == 0 and report["activities_ended"] == 0:
                break
        poller_seconds = time.perf_counter() - started
        aws_per_request = {service: round(count / requests, 3) for service, count in sorted(calls.counts.items())}
        results["posts_for_10000_single_contact_requests"] = {
            "value": posts, "target": math.floor(1.05 * math.ceil(requests / 500)), "naive": requests,
            "batch_size": batch_size}
        results["intake_throughput_requests_per_second"] = round(requests / intake_seconds, 1)
        results["poller_throughput_requests_per_second"] = round(requests / poller_seconds, 1)
        results["aws_calls_per_request"] = aws_per_request

        # 2. one poller run with 2,000 activities pending
        pending = 2_000
        bodies = [json.dumps({"request_id": f"lists-{n}", "source": {"list_ids": [f"l{n}"]}, "tag_ids": ["t1"]})
                  for n in range(pending)]
        for start in range(0, pending, batch_size):
            intake({"Records": sqs_records(bodies[start:start + batch_size])}, LambdaContext("intake", 60))
        sim.add_foreign_activities(150)
        sim.reset_counters()
        report = poller({}, LambdaContext("poller", 120))
        gets = sim.count("GET")
        results["gets_for_one_poller_run_with_2000_pending"] = {
            "value": gets, "target": math.ceil(pending / 500) + 1, "naive": pending,
            "pending": report["pending_activities"], "updated": report["activities_updated"]}
    return results


def import_seconds(statement: str, path: list[str], **environment: str) -> float:
    """Wall time of one import in a fresh interpreter (the median of several)."""
    code = (f"import sys, time; sys.path[:0] = {path!r}; t = time.perf_counter(); {statement}; "
            "print(time.perf_counter() - t)")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **environment}
    samples = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                    env=env).stdout) for _ in range(11)]
    return statistics.median(samples)


def cold_start() -> dict:
    layer = str(ROOT / "layers" / "shared")
    boto3_seconds = import_seconds("import boto3", [layer])
    results = {"import_boto3_ms": round(boto3_seconds * 1000, 1)}
    for function in ("intake", "poller"):
        path = [str(ROOT / "functions" / function), layer]
        seconds = import_seconds("import app", path)
        results[f"{function}_import_ms"] = round(seconds * 1000, 1)
        results[f"{function}_import_ratio_to_boto3"] = round(seconds / boto3_seconds, 2)
        # Inside Lambda with Tracing: Active the X-Ray SDK (and the botocore it needs) is imported too.
        traced = import_seconds("import app", path, LAMBDA_TASK_ROOT=str(ROOT), POWERTOOLS_TRACE_DISABLED="false")
        results[f"{function}_import_with_xray_ratio_to_boto3"] = round(traced / boto3_seconds, 2)
    return results


def main() -> int:
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # the handlers' EMF lines
        results = run_pipeline_scenarios()
    results["cold_start"] = cold_start()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    posts = results["posts_for_10000_single_contact_requests"]
    gets = results["gets_for_one_poller_run_with_2000_pending"]
    cold = results["cold_start"]
    rows = [
        ("CC POSTs, 10,000 single-contact requests", posts["value"], f"<= {posts['target']}", posts["naive"]),
        ("CC GETs, one poller run, 2,000 pending", gets["value"], f"<= {gets['target']}", gets["naive"]),
        ("intake throughput (requests/s)", results["intake_throughput_requests_per_second"], "", ""),
        ("poller throughput (requests finished/s)", results["poller_throughput_requests_per_second"], "", ""),
        ("intake cold import / import boto3", cold["intake_import_ratio_to_boto3"], "<= 1.3", ""),
        ("poller cold import / import boto3", cold["poller_import_ratio_to_boto3"], "<= 1.3", ""),
        ("intake cold import with X-Ray on / boto3", cold["intake_import_with_xray_ratio_to_boto3"], "", ""),
    ] + [(f"AWS calls per request: {service}", value, "", "") for service, value in
         results["aws_calls_per_request"].items()]
    print(f"| {'measure':<44} | {'value':>8} | {'target':>8} | {'naive':>6} |")
    print(f"|{'-' * 46}|{'-' * 10}:|{'-' * 10}:|{'-' * 8}:|")
    for name, value, target, naive in rows:
        print(f"| {name:<44} | {value:>8} | {target:>8} | {naive:>6} |")
    print(f"\nimport boto3: {cold['import_boto3_ms']} ms; intake: {cold['intake_import_ms']} ms; "
          f"poller: {cold['poller_import_ms']} ms. Written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
