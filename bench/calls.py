"""Calls and throughput (scenarios 1, 2, 3 and 5): the pipeline in-process against moto (resources from
template.yaml) and the Constant Contact simulator with no latency and no rate limit.

1. Constant Contact POSTs for 10,000 single-contact requests removing the same tag, at the template's
   intake batch size (target <= 1.05 x ceil(10,000 / 500) = 21; naive: 10,000).
2. GET calls of one poller run with 2,000 activities pending (target <= 6; naive: 2,000).
3. Intake and poller throughput over scenario 1, records (requests) per second.
5. AWS API calls per request (DynamoDB, SNS, Secrets Manager) over scenario 1.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections import Counter

from bench import Row

QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}


def sqs_records(bodies: list[str]) -> list[dict]:
    now = str(int(time.time() * 1000))
    return [
        {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": "rh",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": now},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:untag-IntakeQueue",
        }
        for body in bodies
    ]


class AwsCalls:
    """Counts AWS API calls by service through botocore's event hooks."""

    def __init__(self):
        import boto3

        self.counts: Counter[str] = Counter()
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call", self._count)

    def _count(self, model, **_):
        self.counts[model.service_model.service_name] += 1


def measure() -> dict:
    from moto import mock_aws

    from devkit.pipeline import LambdaContext, load_handler, template_parameter
    from devkit.simulator import ConstantContactSimulator
    from devkit.stack import provision

    results = {}
    with mock_aws(), ConstantContactSimulator(rate_limit_per_second=None, daily_quota=None, reads_to_finish=1) as sim:
        import boto3

        calls = AwsCalls()
        stack = provision()
        boto3.client("secretsmanager").put_secret_value(
            SecretId=stack.secret_id, SecretString=json.dumps(sim.issue_tokens())
        )
        os.environ.update(stack.function_environment("PollerFunction"))
        os.environ.update(stack.function_environment("IntakeFunction"))
        os.environ.update(
            {
                "CC_API_BASE_URL": sim.base_url,
                "CC_TOKEN_URL": sim.token_url,
                "CC_REQUESTS_PER_SECOND": "1000",
                "FIRST_POLL_DELAY_SECONDS": "0",
                **QUIET,
            }
        )
        intake = load_handler(stack, "IntakeFunction")
        poller = load_handler(stack, "PollerFunction")
        batch_size = int(template_parameter(stack, "IntakeBatchSize"))

        # 1. 10,000 single-contact requests removing the same tag
        requests = 10_000
        bodies = [
            json.dumps({"request_id": f"bench-{n}", "source": {"contact_ids": [f"c{n}"]}, "tag_ids": ["t1"]})
            for n in range(requests)
        ]
        calls.counts.clear()
        started = time.perf_counter()
        for start in range(0, requests, batch_size):
            answer = intake({"Records": sqs_records(bodies[start : start + batch_size])}, LambdaContext("intake", 60))
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
            "value": posts,
            "target": math.floor(1.05 * math.ceil(requests / 500)),
            "naive": requests,
            "batch_size": batch_size,
        }
        results["intake_throughput_requests_per_second"] = round(requests / intake_seconds, 1)
        results["poller_throughput_requests_per_second"] = round(requests / poller_seconds, 1)
        results["aws_calls_per_request"] = aws_per_request

        # 2. one poller run with 2,000 activities pending
        pending = 2_000
        bodies = [
            json.dumps({"request_id": f"lists-{n}", "source": {"list_ids": [f"l{n}"]}, "tag_ids": ["t1"]})
            for n in range(pending)
        ]
        for start in range(0, pending, batch_size):
            intake({"Records": sqs_records(bodies[start : start + batch_size])}, LambdaContext("intake", 60))
        sim.add_foreign_activities(150)
        sim.reset_counters()
        report = poller({}, LambdaContext("poller", 120))
        gets = sim.count("GET")
        results["gets_for_one_poller_run_with_2000_pending"] = {
            "value": gets,
            "target": math.ceil(pending / 500) + 1,
            "naive": pending,
            "pending": report["pending_activities"],
            "updated": report["activities_updated"],
        }
    return results


def rows(results: dict) -> list[Row]:
    posts = results["posts_for_10000_single_contact_requests"]
    gets = results["gets_for_one_poller_run_with_2000_pending"]
    return [
        Row(1, "CC POSTs, 10,000 single-contact requests", posts["value"], f"<= {posts['target']}", posts["naive"]),
        Row(2, "CC GETs, one poller run, 2,000 pending", gets["value"], f"<= {gets['target']}", gets["naive"]),
        Row(3, "intake throughput (requests/s)", results["intake_throughput_requests_per_second"]),
        Row(3, "poller throughput (requests finished/s)", results["poller_throughput_requests_per_second"]),
    ] + [Row(5, f"AWS calls per request: {name}", value) for name, value in results["aws_calls_per_request"].items()]


def notes(results: dict) -> str:
    return ""
