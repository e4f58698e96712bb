"""The runner's command line (`python -m devkit.runner`, `make run`) and one run: set up, send, drive, report."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from devkit.runner.display import Display, FunctionOutput, progress_text, route_function_logs
from devkit.runner.environment import (
    ACTIVITY_SECONDS,
    REDELIVERY_SECONDS,
    Aws,
    ConstantContact,
    function_environment,
    start_aws,
    start_constant_contact,
)
from devkit.runner.inputs import RunnerError, load_bodies
from devkit.runner.loop import check_fresh, drive
from devkit.runner.report import failure_message, report
from devkit.runner.tracker import Tracker, expected_events

EXIT_OK, EXIT_UNFINISHED, EXIT_USAGE, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """\
inputs (one of):
  (default)            the request bodies of events/intake-sqs-batch.json and events/intake-invalid.json
  --requests FILE      a JSON-lines file: one untag request (the SQS message body) per line, blank lines skipped
  --generate N         N single-contact requests removing the same tag, plus a few of other kinds and one invalid

rehearsing against real services (off by default):
  --cc-base-url URL --token-file FILE [--token-url URL]
      Talk to the real Constant Contact API instead of the simulator. FILE holds the token secret's JSON
      {"access_token", "refresh_token", "client_id", "client_secret", "expires_at"}; it is put into the
      stack's token secret as an operator does after deploying. With the embedded AWS, tokens refreshed
      during the run are written back to FILE (a rotated refresh token would otherwise be lost).
      Activities are real: use contacts and tags meant for testing. Calls are paced at the template's
      CcRequestsPerSecond; the calls table is only available with the simulator.
  --aws-endpoint URL
      Use an AWS endpoint that is already running (LocalStack, `moto_server`) instead of the embedded moto;
      template.yaml's resources are created there, or reused if an earlier run created them.
      Credentials come from the usual chain (fake ones are set when there are none).
  --stack-outputs FILE
      Use the resources of a deployed stack instead of creating any: FILE is the JSON of its outputs,
      {"IntakeQueueUrl": ..., "IntakeQueueArn": ..., "DeadLetterQueueUrl": ..., "ActivityTableName": ...,
      "ResultTopicArn": ..., "TokenSecretArn": ...} or the list that `sam list stack-outputs --output json`
      prints. Real AWS with your credentials, or the --aws-endpoint given. Requires --cc-base-url (the
      simulator's tokens must not replace the stack's); --token-file is then optional (without it the
      secret's tokens are used). The functions run here with this checkout's code and the template's
      default parameters; the deployed functions keep consuming the same queue, and result events are
      collected from the stack's topic whichever function finished the request. Request ids the stack
      has already seen are refused up front (the service would ignore them as duplicates).

exit status: 0 every request reached a final state, 1 some did not (timeout, dead-letter queue),
2 bad arguments or input, 3 the environment could not be set up, 130 interrupted.
"""


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fault_rate(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.runner",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description="Run the whole untag pipeline on this machine: embedded AWS (moto) built from template.yaml, "
        "the Constant Contact simulator, and both functions driven by their emulated event sources.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--requests", metavar="FILE", help="JSON-lines file of untag requests (default: events/)")
    source.add_argument("--generate", metavar="N", type=positive_int, help="generate N single-contact requests")
    parser.add_argument(
        "--save-requests", metavar="FILE", help="write the requests this run would send as JSON lines to FILE and exit"
    )
    knobs = parser.add_argument_group("knobs")
    knobs.add_argument(
        "--faults",
        metavar="RATE",
        type=fault_rate,
        default=0.0,
        help="share of simulator API calls that fail (500, 503, 429 or slow); default 0",
    )
    knobs.add_argument(
        "--speed",
        metavar="X",
        type=positive_float,
        default=1.0,
        help=f"divide activity durations ({ACTIVITY_SECONDS:g} s) and poll intervals by X; default 1",
    )
    knobs.add_argument(
        "--batch-size",
        metavar="N",
        type=positive_int,
        default=None,
        help="records per intake invocation (default: the template's IntakeBatchSize)",
    )
    knobs.add_argument(
        "--poll-interval",
        metavar="SECONDS",
        type=positive_float,
        default=1.0,
        help="seconds between poller runs, divided by --speed (deployed: 1 minute); default 1",
    )
    knobs.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_float,
        default=300.0,
        help="give up when not every request has a result event after this long; default 300",
    )
    knobs.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of fault injection and of generated request ids (default: random, printed)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--quiet", action="store_true", help="do not print the result events, only the summary")
    output.add_argument(
        "--verbose", action="store_true", help="keep the functions' own JSON logs (INFO) and EMF metric lines"
    )
    rehearsal = parser.add_argument_group("rehearsal against real services (see below)")
    rehearsal.add_argument(
        "--cc-base-url", metavar="URL", help="real Constant Contact API root, e.g. https://api.cc.email/v3"
    )
    rehearsal.add_argument("--token-file", metavar="FILE", help="JSON of the token secret (with --cc-base-url)")
    rehearsal.add_argument("--token-url", metavar="URL", help="OAuth2 token endpoint (default: the template's)")
    rehearsal.add_argument("--aws-endpoint", metavar="URL", help="an AWS endpoint already running, instead of moto")
    rehearsal.add_argument("--stack-outputs", metavar="FILE", help="outputs of a deployed stack to use")
    args = parser.parse_args(argv)
    if (args.token_file or args.token_url) and not args.cc_base_url:
        parser.error("--token-file and --token-url go with --cc-base-url")
    if args.cc_base_url and not args.token_file and not args.stack_outputs:
        parser.error("--cc-base-url needs --token-file (the embedded stack's secret holds no tokens)")
    if args.stack_outputs and not args.cc_base_url:
        parser.error(
            "--stack-outputs needs --cc-base-url: the simulator's tokens must not replace the deployed stack's tokens"
        )
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    return args


@contextmanager
def preserved_process_state() -> Iterator[None]:
    """os.environ and sys.stdout as they were, whatever the run changed (so main() can run in-process)."""
    environment, stdout = dict(os.environ), sys.stdout
    try:
        with warnings.catch_warnings():
            yield
    finally:
        sys.stdout = stdout
        os.environ.clear()
        os.environ.update(environment)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        bodies, described = load_bodies(args)
    except RunnerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.save_requests:
        Path(args.save_requests).write_text("".join(body + "\n" for body in bodies), encoding="utf-8")
        print(f"wrote {described} to {args.save_requests}", file=sys.stderr)
        return EXIT_OK
    with preserved_process_state():
        return Run(args, bodies, described).execute()


class Run:
    """One run: set up, submit, drive, report."""

    def __init__(self, args: argparse.Namespace, bodies: list[str], described: str):
        self.args = args
        self.bodies = bodies
        self.described = described
        self.started = time.monotonic()
        self.phases: dict[str, float] = {}  # seconds spent setting up, sending, driving the pipeline
        self.out = sys.stdout
        self.display = Display(sys.stderr, live=sys.stderr.isatty(), started=self.started)

    def execute(self) -> int:
        args, display = self.args, self.display
        if not args.verbose:
            warnings.filterwarnings("ignore", message="No application metrics to publish")
        function_output = FunctionOutput(display, verbose=args.verbose, fallback=self.out)
        sys.stdout = function_output  # the functions print their logs and metrics; the report goes to self.out
        with ExitStack() as exits:
            exits.callback(function_output.detach_display)
            try:
                aws, cc, pipeline, tracker = self.set_up(exits)
            except RunnerError as error:
                display.close()
                print(f"error: {error}", file=sys.stderr)
                return EXIT_USAGE
            except KeyboardInterrupt:
                display.close()
                print("interrupted while setting up", file=sys.stderr)
                return EXIT_INTERRUPTED
            except Exception as error:  # noqa: BLE001 - AWS or Constant Contact unreachable, misconfigured...
                display.close()
                print(f"error: could not set up the run: {type(error).__name__}: {error}", file=sys.stderr)
                return EXIT_SETUP
            route_function_logs(function_output, self.out)
            dlq_before = pipeline.queue_depth(aws.stack.dlq_url)

            driving = time.monotonic()
            outcome = drive(
                pipeline, tracker, display, poll_interval=args.poll_interval / args.speed, timeout=args.timeout
            )
            self.phases["pipeline"] = time.monotonic() - driving
            tracker.refresh(settled_too=True)
            display.progress(progress_text(tracker.counts(), pipeline), force=True)
            display.close()
            dlq_depth = pipeline.queue_depth(aws.stack.dlq_url)
            sys.stdout = self.out
            report(
                self.out,
                tracker=tracker,
                pipeline=pipeline,
                aws=aws,
                cc=cc,
                outcome=outcome,
                quiet=args.quiet,
                elapsed=time.monotonic() - self.started,
                phases=self.phases,
                dlq_depth=dlq_depth,
                dlq_before=dlq_before,
            )
        if outcome.finished:
            self.out.write(f"\nOK: all {len(tracker.expected):,} requests reached a final state.\n")
            self.out.flush()
            return EXIT_OK
        self.out.flush()
        print("\n" + failure_message(tracker, outcome, args.timeout, dlq_depth), file=sys.stderr)
        return EXIT_INTERRUPTED if outcome.reason == "interrupted" else EXIT_UNFINISHED

    def set_up(self, exits: ExitStack) -> tuple[Aws, ConstantContact, Any, Tracker]:
        import boto3

        from devkit.pipeline import LocalPipeline

        args, display = self.args, self.display
        aws = start_aws(args, exits)
        display.log(f"AWS: {aws.description}")
        cc = start_constant_contact(args, aws.stack, exits)
        display.log(f"Constant Contact: {cc.description}")
        if cc.tokens is not None:  # as an operator fills the secret after deploying
            boto3.client("secretsmanager").put_secret_value(
                SecretId=aws.stack.secret_id, SecretString=json.dumps(cc.tokens)
            )
            if cc.token_file is not None:  # whatever happens next, before the embedded AWS stops
                exits.callback(self.write_back_tokens, aws, cc)
        pipeline = LocalPipeline(
            aws.stack,
            environment=function_environment(args, cc),
            batch_size=args.batch_size,
            redelivery_delay=max(1, math.ceil(REDELIVERY_SECONDS / args.speed)),
        )
        exits.callback(pipeline.close)
        dynamodb = boto3.client("dynamodb")
        provisional = expected_events(self.bodies, [f"local-runner-unsent-{n}" for n in range(len(self.bodies))])
        check_fresh(Tracker(provisional, aws.stack.table_name, dynamodb))
        waiting = pipeline.queue_depth()
        if waiting:
            display.log(f"note: the intake queue already holds {waiting} message(s); they are processed too")
        self.phases["setup"] = time.monotonic() - self.started
        message_ids = pipeline.submit(self.bodies)
        self.phases["sending"] = time.monotonic() - self.started - self.phases["setup"]
        tracker = Tracker(expected_events(self.bodies, message_ids), aws.stack.table_name, dynamodb)
        display.log(
            f"sent {self.described} to the intake queue: {len(tracker.expected):,} result events expected "
            f"(batch size {pipeline.batch_size}, seed {args.seed})"
        )
        return aws, cc, pipeline, tracker

    def write_back_tokens(self, aws: Aws, cc: ConstantContact) -> None:
        """Tokens refreshed during the run must not be lost: a rotated refresh token is the only valid one."""
        import boto3

        try:
            current = json.loads(
                boto3.client("secretsmanager").get_secret_value(SecretId=aws.stack.secret_id)["SecretString"]
            )
        except Exception as error:  # noqa: BLE001
            self.display.log(f"WARNING: could not read the token secret back ({error}); check {cc.token_file}")
            return
        if current == cc.tokens:
            return
        if aws.embedded:
            temporary = cc.token_file.with_name(cc.token_file.name + ".tmp")
            with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as stream:
                stream.write(json.dumps(current, indent=2) + "\n")
            temporary.replace(cc.token_file)
            self.display.log(f"the tokens were refreshed during the run; wrote the new ones to {cc.token_file}")
        else:
            self.display.log(
                f"the tokens were refreshed during the run; the stack's secret holds the new ones "
                f"and {cc.token_file} is out of date"
            )
