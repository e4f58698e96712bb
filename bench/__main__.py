"""`make bench`: how frugal the service is with Constant Contact and AWS, how fast its handlers are,
how light its cold start.

Runs in-process against moto (resources from template.yaml) and the Constant Contact simulator
with no latency and no rate limit, prints a table and writes bench/results.json:

1. Constant Contact POSTs for 10,000 single-contact requests removing the same tag, at the
   template's intake batch size (target <= 1.05 x ceil(10,000 / 500) = 21; naive: 10,000).
2. GET calls of one poller run with 2,000 activities pending (target <= 6; naive: 2,000).
3. Intake and poller throughput, records (requests) per second.
4. Cold import time of each handler module in a fresh interpreter, over a bare `import boto3`: here
   (the layer's sources on this virtualenv) and as deployed (the layer as `sam build` makes it, the
   runtime's boto3 and nothing else on the path, the template's environment and Lambda's, tracing on);
   with the built layer's size, unzipped and zipped.
5. AWS API calls per request (DynamoDB, SNS, Secrets Manager) over scenario 1.
6. A burst of 3,000 single-contact requests, each with its own tag (nothing shareable), in VIRTUAL
   time (devkit/virtual.py): the deployed event flow emulated (SQS event source mapping, schedule,
   visibility timeout, redrive policy), the simulator enforcing 4 calls a second on the same clock.
   Target: drained within 1.15 x the physical limit (3,000 POSTs at 4 a second = 750 s), the DLQ
   empty, no message received more than 3 times, no call over 4 in any second.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from importlib.metadata import distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ[_name] = "bench"
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


BURST_REQUESTS = 3000
BURST_TARGET_RATIO = 1.15


def run_burst_scenario() -> dict:
    from devkit.virtual import run_burst

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
        "intake_invocations": [
            {
                "start": round(i.started, 2),
                "end": round(i.ended, 2),
                "records": i.records,
                "failed": i.failed,
                "posts": i.posts,
            }
            for i in intakes
        ],
        "poller_runs": len(pollers),
        "poller_posts_per_creating_run": round(sum(i.posts for i in creating) / len(creating), 1) if creating else 0,
        "poller_median_first_post_after_start_seconds": round(statistics.median(i.first_post for i in creating), 2)
        if creating
        else None,
        "poller_median_last_post_after_start_seconds": round(statistics.median(i.last_post for i in creating), 2)
        if creating
        else None,
        "real_seconds": round(result.real_seconds, 1),
        "settings": result.settings,
    }


def _import_once(statement: str, path: list[str], environment: dict[str, str], isolated: bool) -> float:
    code = (
        f"import sys, time; sys.path[:0] = {path!r}; t = time.perf_counter(); {statement}; "
        "print(time.perf_counter() - t)"
    )
    flags = ["-I", "-S", "-B"] if isolated else ["-B"]
    return float(
        subprocess.run(
            [sys.executable, *flags, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **environment},
            cwd=tempfile.gettempdir(),
        ).stdout
    )


def import_seconds(statement: str, path: list[str], *, isolated: bool = False, **environment: str) -> float:
    """Wall time of one import in a fresh interpreter (the median of several), writing no bytecode.

    ``isolated``: only the standard library and ``path`` are importable (``python -I -S``), as in
    Lambda, where nothing of this virtualenv exists; otherwise ``path`` goes before the virtualenv.
    """
    return statistics.median(_import_once(statement, path, environment, isolated) for _ in range(11))


def import_ratio(
    measured: tuple[str, list[str], dict[str, str]],
    baseline: tuple[str, list[str], dict[str, str]],
    *,
    isolated: bool = False,
    runs: int = 11,
) -> tuple[float, float, float]:
    """(measured seconds, baseline seconds, ratio): medians over alternating runs of the two imports.

    Alternating keeps the ratio fair on a shared machine, where load changes from second to second.
    """
    pairs = [(_import_once(*measured, isolated), _import_once(*baseline, isolated)) for _ in range(runs)]
    return (
        statistics.median(m for m, _ in pairs),
        statistics.median(b for _, b in pairs),
        statistics.median(m / b for m, b in pairs),
    )


# --------------------------------------------------------------------------- the layer as deployed

LAYER_SOURCE = ROOT / "layers" / "shared"
LAYER_BUILD = ROOT / ".aws-sam" / "build" / "SharedLayer"
# What Lambda sets in every execution environment of these functions (Tracing: Active adds the X-Ray ones).
LAMBDA_VARIABLES = {
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "_HANDLER": "app.lambda_handler",
}


def _sam_build_is_current() -> bool:
    """.aws-sam/build/SharedLayer was built from layers/shared/requirements.txt and untag/ as they are now."""
    built = LAYER_BUILD / "python"
    sources = [LAYER_SOURCE / "requirements.txt"] + [
        f for f in (LAYER_SOURCE / "untag").rglob("*") if f.is_file() and "__pycache__" not in f.parts
    ]
    return built.is_dir() and all(
        (built / f.relative_to(LAYER_SOURCE)).is_file()
        and filecmp.cmp(f, built / f.relative_to(LAYER_SOURCE), shallow=False)
        for f in sources
    )


@contextlib.contextmanager
def built_layer():
    """The layer's contents as ``sam build`` makes them: (directory holding ``python/``, how it was made).

    Either .aws-sam/build/SharedLayer when it is current (``make build``), or the recipe SAM runs
    (layers/shared/Makefile, target build-SharedLayer) run here into a temporary directory, with this
    interpreter (it must be Python 3.13, as the bytecode is) and PyPI or pip's cache for the wheels.
    """
    if _sam_build_is_current():
        yield LAYER_BUILD, "sam build (.aws-sam/build/SharedLayer)"
        return
    with tempfile.TemporaryDirectory(prefix="bench-layer-") as directory:
        subprocess.run(
            [
                "make",
                "--no-print-directory",
                "-C",
                str(LAYER_SOURCE),
                "build-SharedLayer",
                f"ARTIFACTS_DIR={directory}",
                f"LAYER_PYTHON={sys.executable}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        yield Path(directory), "layers/shared/Makefile build-SharedLayer, as sam build runs it (no current sam build)"


def tree_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file() and not f.is_symlink())


def zipped_bytes(directory: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        return Path(shutil.make_archive(str(Path(scratch) / "layer"), "zip", directory)).stat().st_size


def distribution_closure(name: str) -> set[str]:
    """The installed distributions ``name`` needs, itself included (extras ignored)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    pending = [name]
    while pending:
        dist = distribution(pending.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


@contextlib.contextmanager
def lambda_runtime_packages():
    """A directory with only what the Lambda runtime brings (boto3 and what it needs, with their metadata)."""
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as directory:
        for name in sorted(distribution_closure("boto3")):
            for entry in {Path(str(f)).parts[0] for f in distribution(name).files or ()}:
                source = Path(str(distribution(name).locate_file(entry)))
                link = Path(directory) / entry
                if entry.endswith(".data") or entry == ".." or not source.exists() or link.exists():
                    continue
                link.symlink_to(source)
        yield directory


def deployed_environment(logical_id: str) -> dict[str, str]:
    """The function's variables as template.yaml resolves them, plus what Lambda sets (LAMBDA_TASK_ROOT...)."""
    from moto import mock_aws

    from devkit.stack import provision

    with mock_aws():
        variables = provision().function_environment(logical_id)
    return {**variables, **LAMBDA_VARIABLES, "AWS_LAMBDA_FUNCTION_NAME": logical_id}


def cold_start() -> dict:
    """Cold import of each handler over a bare ``import boto3``: here (this virtualenv) and as deployed."""
    layer = str(LAYER_SOURCE)
    results: dict = {}
    for function in ("intake", "poller"):
        path = [str(ROOT / "functions" / function), layer]
        seconds, boto3_seconds, ratio = import_ratio(("import app", path, {}), ("import boto3", [layer], {}))
        results[f"{function}_import_ms"] = round(seconds * 1000, 1)
        results[f"{function}_import_boto3_ms"] = round(boto3_seconds * 1000, 1)
        results[f"{function}_import_ratio_to_boto3"] = round(ratio, 2)
    try:
        with built_layer() as (layer_root, method), lambda_runtime_packages() as runtime:
            python = layer_root / "python"
            results["layer"] = {
                "made_by": method,
                "unzipped_bytes": tree_bytes(layer_root),
                "zipped_bytes": zipped_bytes(layer_root),
                "bytecode_bytes": sum(f.stat().st_size for f in python.rglob("*.pyc")),
                "boto3_or_botocore_inside": sorted(name for name in ("boto3", "botocore") if (python / name).exists()),
            }
            # As deployed: the function's code, the built layer, then the runtime's boto3 and nothing else
            # on the path (Lambda puts /var/task and /opt/python before the runtime's packages), the
            # template's environment plus Lambda's own (LAMBDA_TASK_ROOT, Tracing: Active), no bytecode written.
            deployed: dict = {}
            for function, logical_id in (("intake", "IntakeFunction"), ("poller", "PollerFunction")):
                task_root = str(ROOT / "functions" / function)
                environment = {**deployed_environment(logical_id), "LAMBDA_TASK_ROOT": task_root}
                seconds, boto3_seconds, ratio = import_ratio(
                    ("import app", [task_root, str(python), runtime], environment),
                    ("import boto3", [runtime], environment),
                    isolated=True,
                )
                deployed[f"{function}_import_ms"] = round(seconds * 1000, 1)
                deployed[f"{function}_import_boto3_ms"] = round(boto3_seconds * 1000, 1)
                deployed[f"{function}_import_ratio_to_boto3"] = round(ratio, 2)
            results["as_deployed"] = deployed
    except subprocess.CalledProcessError as error:  # no network and no pip cache, or not Python 3.13
        results["layer"] = {"error": f"could not build the layer: {error}"}
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
    rows = (
        [
            ("CC POSTs, 10,000 single-contact requests", posts["value"], f"<= {posts['target']}", posts["naive"]),
            ("CC GETs, one poller run, 2,000 pending", gets["value"], f"<= {gets['target']}", gets["naive"]),
            ("intake throughput (requests/s)", results["intake_throughput_requests_per_second"], "", ""),
            ("poller throughput (requests finished/s)", results["poller_throughput_requests_per_second"], "", ""),
            ("intake cold import / import boto3", cold["intake_import_ratio_to_boto3"], "<= 1.3", ""),
            ("poller cold import / import boto3", cold["poller_import_ratio_to_boto3"], "<= 1.3", ""),
        ]
        + layer_rows(cold)
        + [
            (f"AWS calls per request: {service}", value, "", "")
            for service, value in results["aws_calls_per_request"].items()
        ]
        + [
            (
                "burst 3,000 own tags: drained, virtual s",
                burst["drained_virtual_seconds"],
                f"<= {BURST_TARGET_RATIO * burst['physical_limit_seconds']:g}",
                "",
            ),
            (
                "  / physical limit (3,000 at 4/s = 750 s)",
                burst["ratio_to_physical_limit"],
                f"<= {BURST_TARGET_RATIO}",
                "",
            ),
            ("  DLQ depth", burst["dlq_depth"], "0", ""),
            ("  most receives of one message", burst["max_receives"], "<= 3", ""),
            (
                "  CC POSTs (duplicates)",
                f"{burst['posts']} ({burst['duplicate_posts']})",
                f"{burst['requests']} (0)",
                "",
            ),
            ("  most CC calls in any 1 s window", burst["max_calls_in_any_1s_window"], "<= 4", ""),
            ("  real seconds the burst took", burst["real_seconds"], "", ""),
        ]
    )
    print(f"| {'measure':<44} | {'value':>8} | {'target':>8} | {'naive':>6} |")
    print(f"|{'-' * 46}|{'-' * 10}:|{'-' * 10}:|{'-' * 8}:|")
    for name, value, target, naive in rows:
        print(f"| {name:<44} | {value:>8} | {target:>8} | {naive:>6} |")
    for where, numbers in (("here", cold), ("as deployed", cold.get("as_deployed", {}))):
        times = [
            f"{function} {numbers[f'{function}_import_ms']} ms / {numbers[f'{function}_import_boto3_ms']} ms"
            for function in ("intake", "poller")
            if f"{function}_import_ms" in numbers
        ]
        print(f"\ncold import {where} (handler / import boto3, medians): " + "; ".join(times), end="")
    layer = cold["layer"]
    print(f"\nlayer: {layer.get('made_by') or layer.get('error')}. Written to {RESULTS.relative_to(ROOT)}")
    settings = burst["settings"]
    met = burst["ratio_to_physical_limit"] is not None and burst["ratio_to_physical_limit"] <= BURST_TARGET_RATIO
    print(
        f"\nBurst (virtual time, devkit/virtual.py): CC_REQUESTS_PER_SECOND={settings['cc_requests_per_second']:g}, "
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
        f"Target {'met' if met else 'MISSED'} (see docs/benchmarks.md)."
    )
    return 0


def layer_rows(cold: dict) -> list[tuple]:
    """The rows of the built layer: its size, and the cold import as deployed (none if it could not be built)."""
    layer, deployed = cold["layer"], cold.get("as_deployed")
    if not deployed:
        return []
    return [
        ("layer unzipped (MB, bytecode included)", round(layer["unzipped_bytes"] / 1e6, 2), "<= 10", ""),
        ("layer zipped (MB)", round(layer["zipped_bytes"] / 1e6, 2), "", ""),
        ("layer's own boto3/botocore", ", ".join(layer["boto3_or_botocore_inside"]) or "none", "none", ""),
        ("intake cold import as deployed / boto3", deployed["intake_import_ratio_to_boto3"], "<= 1.2", ""),
        ("poller cold import as deployed / boto3", deployed["poller_import_ratio_to_boto3"], "<= 1.2", ""),
    ]


if __name__ == "__main__":
    sys.exit(main())
