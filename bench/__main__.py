"""`make bench`: how frugal the service is with Constant Contact and AWS, how fast its handlers are, how light its cold start.

Runs in-process against moto (resources from template.yaml) and the Constant Contact simulator
with no latency and no rate limit, prints a table and writes bench/results.json:

1. Constant Contact POSTs for 10,000 single-contact requests removing the same tag, at the
   template's intake batch size (target <= 1.05 x ceil(10,000 / 500) = 21; naive: 10,000).
2. GET calls of one poller run with 2,000 activities pending (target <= 6; naive: 2,000).
3. Intake and poller throughput, records (requests) per second.
4. Cold import time of each handler module in a fresh interpreter, over a bare `import boto3`.
5. AWS API calls per request (DynamoDB, SNS, Secrets Manager) over scenario 1.
6. A burst of 3,000 single-contact requests, each with its own tag (nothing shareable), in VIRTUAL
   time (local/virtual.py): the deployed event flow emulated (SQS event source mapping, schedule,
   visibility timeout, redrive policy), the simulator enforcing 4 calls a second on the same clock.
   Target: drained within 1.15 x the physical limit (3,000 POSTs at 4 a second = 750 s), the DLQ
   empty, no message received more than 3 times, no call over 4 in any second.
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

    from local.pipeline import LambdaContext, load_handler, template_parameter
    from local.simulator import ConstantContactSimulator
    from local.stack import provision

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


BURST_REQUESTS = 3000
BURST_TARGET_RATIO = 1.15


def run_burst_scenario() -> dict:
    from local.virtual import run_burst

    result = run_burst(BURST_REQUESTS)
    if result.errors:
        raise RuntimeError("the burst emulation failed:\n" + "\n".join(result.errors))
    intakes = [i for i in result.invocations if i.function == "intake"]
    pollers = [i for i in result.invocations if i.function == "poller"]
    creating = [i for i in pollers if i.posts]
    return {
        "requests": result.requests,
        "requests_per_second": result.requests_per_second,
        "physical_limit_seconds": result.physical_limit_seconds,
        "drained_virtual_seconds": None if result.drained_seconds is None else round(result.drained_seconds, 2),
        "ratio_to_physical_limit": None if result.ratio is None else round(result.ratio, 3),
        "target_ratio": BURST_TARGET_RATIO,
        "dlq_depth": result.dlq_depth,
        "intake_queue_depth_at_end": result.queue_depth,
        "max_receives": result.max_receives,
        "messages_by_receives": {str(count): messages for count, messages in sorted(result.receives.items())},
        "posts": result.posts,
        "duplicate_posts": result.duplicate_posts,
        "throttled_429": result.throttled,
        "gets": result.gets,
        "max_calls_in_any_1s_window": result.max_calls_in_one_second,
        "requests_left_on_creation_list": result.requests_left_creating,
        "invocations_over_timeout": result.over_timeout,
        "poller_ticks_skipped": result.skipped_ticks,
        "seconds_no_function_running": round(result.idle_seconds(), 1),
        "intake_invocations": [{"start": round(i.started, 2), "end": round(i.ended, 2), "records": i.records,
                                "failed": i.failed, "posts": i.posts} for i in intakes],
        "poller_runs": len(pollers),
        "poller_posts_per_creating_run": round(sum(i.posts for i in creating) / len(creating), 1) if creating else 0,
        "poller_median_first_post_after_start_seconds":
            round(statistics.median(i.first_post for i in creating), 2) if creating else None,
        "poller_median_last_post_after_start_seconds":
            round(statistics.median(i.last_post for i in creating), 2) if creating else None,
        "real_seconds": round(result.real_seconds, 1),
        "settings": result.settings,
    }


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
        results["burst_3000_distinct_tags_virtual_time"] = run_burst_scenario()
    results["cold_start"] = cold_start()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    posts = results["posts_for_10000_single_contact_requests"]
    gets = results["gets_for_one_poller_run_with_2000_pending"]
    cold = results["cold_start"]
    burst = results["burst_3000_distinct_tags_virtual_time"]
    rows = [
        ("CC POSTs, 10,000 single-contact requests", posts["value"], f"<= {posts['target']}", posts["naive"]),
        ("CC GETs, one poller run, 2,000 pending", gets["value"], f"<= {gets['target']}", gets["naive"]),
        ("intake throughput (requests/s)", results["intake_throughput_requests_per_second"], "", ""),
        ("poller throughput (requests finished/s)", results["poller_throughput_requests_per_second"], "", ""),
        ("intake cold import / import boto3", cold["intake_import_ratio_to_boto3"], "<= 1.3", ""),
        ("poller cold import / import boto3", cold["poller_import_ratio_to_boto3"], "<= 1.3", ""),
        ("intake cold import with X-Ray on / boto3", cold["intake_import_with_xray_ratio_to_boto3"], "", ""),
    ] + [(f"AWS calls per request: {service}", value, "", "") for service, value in
         results["aws_calls_per_request"].items()] + [
        ("burst 3,000 own tags: drained, virtual s", burst["drained_virtual_seconds"],
         f"<= {BURST_TARGET_RATIO * burst['physical_limit_seconds']:g}", ""),
        ("  / physical limit (3,000 at 4/s = 750 s)", burst["ratio_to_physical_limit"],
         f"<= {BURST_TARGET_RATIO}", ""),
        ("  DLQ depth", burst["dlq_depth"], "0", ""),
        ("  most receives of one message", burst["max_receives"], "<= 3", ""),
        ("  CC POSTs (duplicates)", f"{burst['posts']} ({burst['duplicate_posts']})",
         f"{burst['requests']} (0)", ""),
        ("  most CC calls in any 1 s window", burst["max_calls_in_any_1s_window"], "<= 4", ""),
        ("  real seconds the burst took", burst["real_seconds"], "", ""),
    ]
    print(f"| {'measure':<44} | {'value':>8} | {'target':>8} | {'naive':>6} |")
    print(f"|{'-' * 46}|{'-' * 10}:|{'-' * 10}:|{'-' * 8}:|")
    for name, value, target, naive in rows:
        print(f"| {name:<44} | {value:>8} | {target:>8} | {naive:>6} |")
    print(f"\nimport boto3: {cold['import_boto3_ms']} ms; intake: {cold['intake_import_ms']} ms; "
          f"poller: {cold['poller_import_ms']} ms. Written to {RESULTS.relative_to(ROOT)}")
    settings = burst["settings"]
    met = burst["ratio_to_physical_limit"] is not None and burst["ratio_to_physical_limit"] <= BURST_TARGET_RATIO
    print(f"\nBurst (virtual time, local/virtual.py): CC_REQUESTS_PER_SECOND={settings['cc_requests_per_second']:g}, "
          f"the template's maximum (the service's default is {settings['template_default_requests_per_second']:g}/s; "
          "the target is stated at 4/s). Modelled latency: "
          f"{settings['cc_latency_seconds']:g} s per Constant Contact call, {settings['aws_latency_seconds']:g} s per "
          "AWS call made by a function; the event source mapping's own SQS calls and cold starts take none. "
          "Invocations overlap in virtual time as deployed (at most "
          f"{settings['intake_max_concurrency']} intakes of up to {settings['intake_batch_size']} records, the poller "
          f"every {settings['poll_schedule_seconds']} s from {settings['first_tick_seconds']:g} s after the burst), "
          "run one thread at a time so the run is deterministic. "
          f"No function ran for {burst['seconds_no_function_running']} s of the drain; a creating poller run made "
          f"{burst['poller_posts_per_creating_run']} POSTs on average, the first (median) "
          f"{burst['poller_median_first_post_after_start_seconds']} s and the last "
          f"{burst['poller_median_last_post_after_start_seconds']} s after its start. "
          f"Target {'met' if met else 'MISSED'} (see docs/benchmarks.md).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
