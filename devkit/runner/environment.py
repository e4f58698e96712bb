"""Where a run takes place: the AWS (embedded moto, an endpoint, or a deployed stack) and Constant Contact
(the simulator, or the real API), and what the runner changes in the functions' environment."""

from __future__ import annotations

import argparse
import json
import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.runner.inputs import RunnerError
from devkit.stack.provision import DEPLOYED_OUTPUTS
from untag_operator.outputs import OutputsError, read_outputs_file, region_of

# Local pacing at --speed 1; every duration below is divided by --speed.
ACTIVITY_SECONDS = 3.0  # a simulated activity finishes this long after it was created
FIRST_POLL_DELAY_SECONDS = 1.0  # the poller first looks at an activity this long after its creation...
MAX_POLL_INTERVAL_SECONDS = 5.0  # ...and then at most this long apart (deployed: 2 s and 60 s)
REDELIVERY_SECONDS = 1.0  # a record the intake leaves for redelivery comes back after this (deployed: 420 s)

SIMULATOR_RATE_LIMIT = 4.0  # Constant Contact: 4 requests per second per application...
SIMULATOR_DAILY_QUOTA = 10_000  # ...and 10,000 per day


@dataclass
class Aws:
    stack: Any  # devkit.stack.Stack
    description: str
    embedded: bool  # the moto this run started (else an endpoint or account that outlives the run)


def _fake_credentials(force: bool) -> None:
    import boto3

    if force or boto3.session.Session().get_credentials() is None:
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
            os.environ.pop(name, None)


def _use_endpoint(url: str) -> None:
    os.environ["AWS_ENDPOINT_URL"] = url
    for name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_")]:
        os.environ.pop(name)  # a per-service endpoint would win over the one given
    os.environ.pop("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", None)


def start_aws(args: argparse.Namespace, exits: ExitStack) -> Aws:
    from devkit.stack import provision

    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    if args.stack_outputs:
        if args.aws_endpoint:
            _use_endpoint(args.aws_endpoint)
            _fake_credentials(force=False)
        stack = deployed_stack(args.stack_outputs)
        where = args.aws_endpoint or "AWS"
        return Aws(stack, f"deployed stack at {where} (queue {stack.queue_url})", embedded=False)
    if args.aws_endpoint:
        _use_endpoint(args.aws_endpoint)
        _fake_credentials(force=False)
        return Aws(provision(), f"{args.aws_endpoint} (resources from template.yaml)", embedded=False)

    from moto.server import ThreadedMotoServer

    _speed_up_moto_receive()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per AWS call
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    exits.callback(server.stop)
    host, port = server.get_host_and_port()
    _use_endpoint(f"http://{host}:{port}")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    _fake_credentials(force=True)
    return Aws(provision(), f"embedded moto at http://{host}:{port} (resources from template.yaml)", embedded=True)


def _speed_up_moto_receive() -> None:
    """moto 5.2 checks each received message's retention by computing every queue attribute, message
    counts included, so receiving N queued messages costs O(N^2): 17 s for 1,000 messages. Same check,
    reading the one attribute it needs (the embedded server runs in this process)."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    original = SQSBackend.is_message_valid_based_on_retention_period
    if getattr(original, "local_runner", False):
        return

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if retention is None:  # not the moto this was written for: its own way
            return original(self, queue_name, message)
        return int(retention) + message.sent_timestamp / 1000 > unix_time()

    is_message_valid_based_on_retention_period.local_runner = True  # type: ignore[attr-defined]
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period


def deployed_stack(path: str | os.PathLike[str]) -> Any:
    """A ``devkit.stack.Stack`` for a deployed stack's resources, from its outputs file (checked to be reachable)."""
    import boto3

    from devkit.stack import deployed

    try:
        outputs = read_outputs_file(path, DEPLOYED_OUTPUTS)
        stack = deployed(outputs)
    except (OutputsError, ValueError) as error:
        raise RunnerError(f"{path}: {error}") from None
    os.environ["AWS_DEFAULT_REGION"] = region_of(outputs) or os.environ["AWS_DEFAULT_REGION"]
    # Fail here, clearly, rather than in the middle of the run.
    boto3.client("sqs").get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])
    boto3.client("dynamodb").describe_table(TableName=stack.table_name)
    boto3.client("sns").get_topic_attributes(TopicArn=stack.topic_arn)
    return stack


@dataclass
class ConstantContact:
    base_url: str
    token_url: str
    tokens: dict[str, Any] | None  # put into the token secret (None: keep what it holds)
    description: str
    simulator: Any = None  # devkit.simulator.ConstantContactSimulator
    token_file: Path | None = None


def read_token_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        tokens = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunnerError(f"cannot read the token file {path}: {error}") from None
    if not isinstance(tokens, dict) or not isinstance(tokens.get("access_token"), str):
        raise RunnerError(f"{path}: expected the token secret's JSON, with at least an access_token")
    return tokens


def start_constant_contact(args: argparse.Namespace, stack: Any, exits: ExitStack) -> ConstantContact:
    if args.cc_base_url:
        from devkit.pipeline import template_parameter

        token_url = args.token_url or template_parameter(stack, "CcTokenUrl")
        token_file = Path(args.token_file) if args.token_file else None
        tokens = read_token_file(token_file) if token_file else None
        return ConstantContact(
            args.cc_base_url.rstrip("/"),
            token_url,
            tokens,
            f"{args.cc_base_url} (real API; tokens from {token_file or 'the stack secret'})",
            token_file=token_file,
        )

    from devkit import sample_account
    from devkit.simulator import ConstantContactSimulator

    seconds = ACTIVITY_SECONDS / args.speed
    simulator = ConstantContactSimulator(
        seconds_to_finish=seconds,
        rate_limit_per_second=SIMULATOR_RATE_LIMIT,
        daily_quota=SIMULATOR_DAILY_QUOTA,
        fault_rate=args.faults,
        seed=args.seed,
    )
    simulator.start()
    exits.callback(simulator.stop)
    sample_account.seed(simulator)  # the tags and contacts the sample requests name
    return ConstantContact(
        simulator.base_url,
        simulator.token_url,
        simulator.issue_tokens(),
        f"simulator at {simulator.base_url} (activities take {seconds:g} s, "
        f"{SIMULATOR_RATE_LIMIT:g} req/s, {SIMULATOR_DAILY_QUOTA:,} a day, faults {args.faults:g})",
        simulator=simulator,
    )


def function_environment(args: argparse.Namespace, cc: ConstantContact) -> dict[str, str]:
    """What the runner changes in the functions' environment (template.yaml's own is applied first)."""
    environment = {"CC_API_BASE_URL": cc.base_url, "CC_TOKEN_URL": cc.token_url}
    if cc.simulator is not None:  # simulated activities take seconds: poll at the same scale
        environment["FIRST_POLL_DELAY_SECONDS"] = f"{FIRST_POLL_DELAY_SECONDS / args.speed:g}"
        environment["MAX_POLL_INTERVAL_SECONDS"] = f"{MAX_POLL_INTERVAL_SECONDS / args.speed:g}"
    if not args.verbose:
        environment.update(POWERTOOLS_LOG_LEVEL="WARNING", POWERTOOLS_METRICS_DISABLED="true")
    return environment
