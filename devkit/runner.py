"""`make run`: the whole untag pipeline on one machine, driven end to end, watched live and summed up.

Starts an embedded AWS (moto's ThreadedMotoServer on 127.0.0.1, resources built from
template.yaml by ``devkit.stack``) and the Constant Contact simulator, sends untag requests to the
intake queue, then drives the two functions in this process through ``devkit.pipeline`` (the SQS
event source mapping and the poller's schedule, emulated) until every request has its result
event or the timeout passes. Prints a live progress line (plain log lines when not a terminal),
then the result events and a summary. Exit status: 0 every request reached a final state,
1 some did not, 2 bad arguments or input, 3 the environment could not be set up, 130 interrupted.

    python -m devkit.runner                       # the sample requests of events/
    python -m devkit.runner --requests FILE.jsonl # one untag request per line
    python -m devkit.runner --generate 1000       # a generated load
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import random
import shutil
import sys
import threading
import time
import warnings
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

from untag_operator.outputs import OutputsError, read_outputs_file, region_of

from devkit.stack.provision import DEPLOYED_OUTPUTS

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"
SAMPLE_EVENT_FILES = ("intake-sqs-batch.json", "intake-invalid.json")

# Local pacing at --speed 1; every duration below is divided by --speed.
ACTIVITY_SECONDS = 3.0  # a simulated activity finishes this long after it was created
FIRST_POLL_DELAY_SECONDS = 1.0  # the poller first looks at an activity this long after its creation...
MAX_POLL_INTERVAL_SECONDS = 5.0  # ...and then at most this long apart (deployed: 2 s and 60 s)
REDELIVERY_SECONDS = 1.0  # a record the intake leaves for redelivery comes back after this (deployed: 420 s)

SIMULATOR_RATE_LIMIT = 4.0  # Constant Contact: 4 requests per second per application...
SIMULATOR_DAILY_QUOTA = 10_000  # ...and 10,000 per day
PROGRESS_REFRESH_SECONDS = 0.5  # the progress line is redrawn this often; the table read at most this often
LOG_MIN_INTERVAL_SECONDS = 2.0  # not a terminal: a progress line at most this often when something changed...
LOG_HEARTBEAT_SECONDS = 10.0  # ...and at least this often when nothing did
EVENTS_SHOWN_IN_FULL = 20  # more result events than this: only the first EVENTS_SHOWN_WHEN_MANY are printed
EVENTS_SHOWN_WHEN_MANY = 10
STATE_ORDER = ("completed", "failed", "timed_out", "cancelled", "rejected")

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


class RunnerError(Exception):
    """A problem with the arguments or the input, reported without a traceback."""


# --------------------------------------------------------------------------- inputs


def sample_requests() -> list[str]:
    """The request bodies of the sample SQS events in events/ (every source type, a split one, invalid ones)."""
    bodies: list[str] = []
    for name in SAMPLE_EVENT_FILES:
        event = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
        bodies.extend(record["body"] for record in event["Records"])
    return bodies


def read_requests(path: str | os.PathLike[str]) -> list[str]:
    """The message bodies of a JSON-lines file: one untag request per line, blank lines skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RunnerError(f"cannot read the requests file {path}: {error}") from None
    bodies = [line.strip() for line in text.splitlines() if line.strip()]
    if not bodies:
        raise RunnerError(f"the requests file {path} holds no requests")
    return bodies


def generate_requests(count: int, run_id: str) -> list[str]:
    """``count`` single-contact requests removing one tag (they share activities), then four of other kinds."""
    tag = "t-generated"
    bodies = [
        {"request_id": f"gen-{run_id}-{n:06d}", "source": {"contact_ids": [f"c-gen-{n:06d}"]}, "tag_ids": [tag],
         "metadata": {"generated": n}}
        for n in range(1, count + 1)
    ]
    bodies += [
        {"request_id": f"gen-{run_id}-lists", "source": {"list_ids": ["l-generated-1", "l-generated-2"]},
         "exclude": {"contact_ids": ["c-gen-keep"]}, "tag_ids": [tag]},
        {"request_id": f"gen-{run_id}-everyone", "source": {"all_active_contacts": True},
         "tag_ids": ["t-generated-old"]},
        {"request_id": f"gen-{run_id}-tagged", "source": {"tag_ids": ["t-generated-source"]}, "tag_ids": [tag]},
        {"request_id": f"gen-{run_id}-invalid", "source": {"contact_ids": ["c-1"], "list_ids": ["l-1"]},
         "tag_ids": [tag]},
    ]
    return [json.dumps(body, separators=(",", ":")) for body in bodies]


# --------------------------------------------------------------------------- what each request should produce


@dataclass(frozen=True)
class Expected:
    """One result event the run waits for, and the table record that tracks it until then."""

    key: tuple[str, ...]  # ("request", request_id) or ("rejected", request_id, message body)
    request_id: str
    record_key: dict[str, str]

    @property
    def rejected(self) -> bool:
        return self.key[0] == "rejected"


def expected_events(bodies: list[str], message_ids: list[str]) -> dict[tuple[str, ...], Expected]:
    """The distinct result events the service owes for these messages (read with the service's own reader).

    A valid request is finished once per request id (a duplicate delivery adds nothing); a rejected
    message once per distinct body under its id. A request without ``request_id`` is known by its
    message id, as the intake does.
    """
    from untag.request import Rejection, read_request
    from untag.result_event import rejection_key
    from untag.store import request_key

    expected: dict[tuple[str, ...], Expected] = {}
    for body, message_id in zip(bodies, message_ids, strict=True):
        outcome = read_request(body, message_id)
        if isinstance(outcome, Rejection):
            key: tuple[str, ...] = ("rejected", outcome.request_id, body)
            # The intake stores a rejection under REQUEST#<id> / REJECTED#<key> (untag.intake._reject).
            record = {"pk": f"REQUEST#{outcome.request_id}", "sk": f"REJECTED#{rejection_key(outcome)}"}
        else:
            key = ("request", outcome.request_id)
            record = request_key(outcome.request_id)
        expected.setdefault(key, Expected(key, outcome.request_id, record))
    return expected


def event_key(event: dict[str, Any]) -> tuple[str, ...]:
    if event.get("state") == "rejected":
        return ("rejected", str(event.get("request_id")), str(event.get("original_body")))
    return ("request", str(event.get("request_id")))


class Tracker:
    """Which expected result events have arrived, and what the activity table says of the others.

    Thread-safe: the progress ticker reads its counts while the main thread updates it.
    """

    def __init__(self, expected: dict[tuple[str, ...], Expected], table_name: str, dynamodb: Any):
        self.expected = expected
        self.events: dict[tuple[str, ...], dict[str, Any]] = {}
        self.records: dict[tuple[str, ...], dict[str, Any] | None] = dict.fromkeys(expected)
        self.unexpected = 0  # events of requests this run did not send (other producers, earlier runs)
        self._table = table_name
        self._dynamodb = dynamodb
        self._lock = threading.Lock()
        self._taken = 0
        self._seen_event_ids: set[str] = set()

    def take(self, results: list[dict[str, Any]]) -> None:
        """Match the result events collected since the last call."""
        with self._lock:
            for event in results[self._taken:]:
                key = event_key(event)
                if event.get("event_id") in self._seen_event_ids:
                    continue  # SNS delivers at least once; the service may publish an outcome again
                if key in self.expected and key not in self.events:
                    self.events[key] = event
                else:
                    self.unexpected += 1
                self._seen_event_ids.add(event.get("event_id"))
            self._taken = len(results)

    def refresh(self, keys: list[tuple[str, ...]] | None = None, *, settled_too: bool = False) -> None:
        """Read the table records of the requests still without an event (100 per BatchGetItem).

        Only those not yet read or still being created, unless ``settled_too``: a pending request's
        activities no longer change, so the progress line does not need it read again.
        """
        wanted = keys if keys is not None else [
            key for key in self.missing
            if settled_too or (self.records.get(key) or {}).get("status", "creating") == "creating"]
        by_record = {(self.expected[key].record_key["pk"], self.expected[key].record_key["sk"]): key
                     for key in wanted}
        found = self._read(list(by_record))
        with self._lock:
            for record_id, key in by_record.items():
                self.records[key] = found.get(record_id)

    def _read(self, record_ids: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(record_ids), 100):
            request = {self._table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in record_ids[start:start + 100]],
                "ProjectionExpression": "pk, sk, #status, activities",
                "ExpressionAttributeNames": {"#status": "status"}, "ConsistentRead": True}}
            for attempt in range(5):
                answer = self._dynamodb.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, ()):
                    record = {name: deserializer.deserialize(value) for name, value in item.items()}
                    found[(record["pk"], record["sk"])] = record
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2 ** attempt)
        return found

    @property
    def missing(self) -> list[tuple[str, ...]]:
        with self._lock:
            return [key for key in self.expected if key not in self.events]

    @property
    def complete(self) -> bool:
        with self._lock:
            return len(self.events) == len(self.expected)

    def lost(self) -> list[tuple[str, ...]]:
        """Requests without an event that the table has never heard of (meaningful once the queue is empty)."""
        return [key for key in self.missing if self.records.get(key) is None]

    def counts(self) -> dict[str, int]:
        with self._lock:
            records, events = list(self.records.items()), list(self.events.values())
            known = [key for key, record in records if record or key in self.events]  # the intake has read it
        accepted = sum(1 for key in known if not self.expected[key].rejected)
        activities = {str(activity_id) for _, record in records if record
                      for activity_id in (record.get("activities") or {}).values()}
        activities |= {activity["activity_id"] for event in events for activity in event.get("activities") or ()}
        return {"total": len(self.expected), "accepted": accepted, "rejected": len(known) - accepted,
                "activities": len(activities), "finished": len(events)}

    def waiting_reasons(self) -> Counter[str]:
        """Why each request without an event is still open, from its table record."""
        reasons: Counter[str] = Counter()
        for key in self.missing:
            record = self.records.get(key)
            status = (record or {}).get("status")
            if record is None:
                reasons["not accepted from the intake queue"] += 1
            elif status == "creating":
                reasons["activities still being created"] += 1
            elif status == "pending":
                reasons["waiting for Constant Contact to finish its activities"] += 1
            else:
                reasons["finished, result event not published yet"] += 1
        return reasons


# --------------------------------------------------------------------------- display


class Display:
    """Progress and log lines: one line redrawn with \\r on a terminal, plain timestamped lines otherwise."""

    def __init__(self, stream: TextIO, *, live: bool, started: float):
        self._stream = stream
        self._live = live
        self._started = started
        self._lock = threading.RLock()
        self._line = ""  # the progress line now on screen (live mode)
        self._last_logged = ""
        self._last_logged_at = 0.0

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._started:6.1f}s]"

    def log(self, text: str) -> None:
        """A line that stays (setup, warnings, function logs), printed above the progress line."""
        with self._lock:
            if self._live and self._line:
                self._stream.write("\r" + " " * len(self._line) + "\r")
            self._stream.write(f"{self._stamp()} {text}\n")
            if self._live and self._line:
                self._stream.write(self._line)
            self._stream.flush()

    def progress(self, text: str, *, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            since = now - self._last_logged_at
            if self._live:
                width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
                line = f"{self._stamp()} {text}"[:width]  # never wrap: \r only returns to the start of a line
                self._stream.write("\r" + line + " " * max(0, len(self._line) - len(line)))
                self._line = line
                self._stream.flush()
            elif (force and text != self._last_logged) or since >= LOG_HEARTBEAT_SECONDS \
                    or (text != self._last_logged and since >= LOG_MIN_INTERVAL_SECONDS):
                self._stream.write(f"{self._stamp()} {text}\n")
                self._stream.flush()
                self._last_logged, self._last_logged_at = text, now

    def close(self) -> None:
        with self._lock:
            if self._live and self._line:
                self._stream.write("\n")
                self._stream.flush()
            self._line = ""


POWERTOOLS_LOG_KEYS = frozenset({
    "level", "location", "message", "timestamp", "service", "cold_start", "function_name", "function_memory_size",
    "function_arn", "function_request_id", "xray_trace_id", "sampling_rate", "exception", "exception_name",
    "stack_trace",
})


class FunctionOutput(io.TextIOBase):
    """``sys.stdout`` while the functions run: their log lines go to the display; EMF metric lines are
    dropped (shown as they are with ``verbose``). Powertools' ``single_metric`` prints even when
    POWERTOOLS_METRICS_DISABLED is set, hence the filter."""

    def __init__(self, display: Display, *, verbose: bool, fallback: TextIO):
        super().__init__()
        self._display: Display | None = display
        self._verbose = verbose
        self._fallback = fallback
        self._buffer = ""
        self._lock = threading.Lock()
        self.metric_lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            if self._display is None:
                return self._fallback.write(text)
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        pass

    def detach_display(self) -> None:
        """After the run: anything still written (a logger that kept this stream) goes to the fallback."""
        with self._lock:
            rest, self._buffer, self._display = self._buffer, "", None
        if rest:
            self._fallback.write(rest + "\n")

    def _line(self, line: str) -> None:
        if not line.strip() or self._display is None:
            return
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and "_aws" in record:
            self.metric_lines += 1
            if not self._verbose:
                return
        if self._verbose or not isinstance(record, dict) or "level" not in record:
            self._display.log(line)
            return
        extras = {key: value for key, value in record.items() if key not in POWERTOOLS_LOG_KEYS}
        text = f"{record.get('function_name') or record.get('service', 'function')} {record['level']}: " \
               f"{record.get('message')}"
        if extras:
            text += " " + json.dumps(extras, separators=(",", ":"), default=str)
        if record.get("exception_name"):
            text += f" [{record['exception_name']}]"
        self._display.log(text)


def _route_function_logs(stream: TextIO, original: TextIO) -> None:
    """Point the Powertools logger's handler at ``stream`` if it was bound to ``original`` (it binds
    sys.stdout once, when ``untag.observability`` is first imported)."""
    for handler in logging.getLogger("untag").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is original:
            handler.setStream(stream)


class Ticker:
    """Redraws the progress line in the background, so it moves during a long function invocation too.

    It reads nothing itself: moto's server is not thread-safe, so only the main thread calls AWS.
    """

    def __init__(self, tracker: Tracker, display: Display, pipeline: Any):
        self._tracker, self._display, self._pipeline = tracker, display, pipeline
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def __enter__(self) -> "Ticker":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(PROGRESS_REFRESH_SECONDS):
            self._display.progress(progress_text(self._tracker.counts(), self._pipeline))


# --------------------------------------------------------------------------- AWS and Constant Contact


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
        return ConstantContact(args.cc_base_url.rstrip("/"), token_url, tokens,
                               f"{args.cc_base_url} (real API; tokens from {token_file or 'the stack secret'})",
                               token_file=token_file)

    from devkit.simulator import ConstantContactSimulator

    seconds = ACTIVITY_SECONDS / args.speed
    simulator = ConstantContactSimulator(seconds_to_finish=seconds, rate_limit_per_second=SIMULATOR_RATE_LIMIT,
                                         daily_quota=SIMULATOR_DAILY_QUOTA, fault_rate=args.faults, seed=args.seed)
    simulator.start()
    exits.callback(simulator.stop)
    return ConstantContact(simulator.base_url, simulator.token_url, simulator.issue_tokens(),
                           f"simulator at {simulator.base_url} (activities take {seconds:g} s, "
                           f"{SIMULATOR_RATE_LIMIT:g} req/s, {SIMULATOR_DAILY_QUOTA:,} a day, faults {args.faults:g})",
                           simulator=simulator)


def function_environment(args: argparse.Namespace, cc: ConstantContact) -> dict[str, str]:
    """What the runner changes in the functions' environment (template.yaml's own is applied first)."""
    environment = {"CC_API_BASE_URL": cc.base_url, "CC_TOKEN_URL": cc.token_url,
                   "POWERTOOLS_TRACE_DISABLED": "true"}  # no X-Ray daemon here
    if cc.simulator is not None:  # simulated activities take seconds: poll at the same scale
        environment["FIRST_POLL_DELAY_SECONDS"] = f"{FIRST_POLL_DELAY_SECONDS / args.speed:g}"
        environment["MAX_POLL_INTERVAL_SECONDS"] = f"{MAX_POLL_INTERVAL_SECONDS / args.speed:g}"
    if not args.verbose:
        environment.update(POWERTOOLS_LOG_LEVEL="WARNING", POWERTOOLS_METRICS_DISABLED="true")
    return environment


# --------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    finished: bool
    reason: str = ""  # "timeout", "lost", "interrupted"
    poller_errors: list[str] = field(default_factory=list)


def drive(pipeline: Any, tracker: Tracker, display: Display, *, poll_interval: float, timeout: float) -> Outcome:
    """Emulate the event sources until every expected event arrived, the rest can never come, or time is up.

    Each turn: one event source mapping poll (an intake invocation if the queue has messages), the
    poller when its schedule is due, then the result events. Sequential, like one concurrent slot each.
    """
    import traceback

    outcome = Outcome(finished=False)
    started = time.monotonic()
    deadline = started + timeout
    next_poll = started
    next_refresh = started
    shown_errors = 0
    quiet_turns = 0
    try:
        with Ticker(tracker, display, pipeline):
            while True:
                took = pipeline.intake_once()
                for error in pipeline.intake_errors[shown_errors:]:
                    display.log("intake function error (the batch will be retried):\n" + error.rstrip())
                shown_errors = len(pipeline.intake_errors)
                if time.monotonic() >= next_refresh:
                    reading = time.monotonic()
                    tracker.refresh()
                    # moto runs in this process: keep the display's share of the work small on big runs
                    next_refresh = time.monotonic() + max(PROGRESS_REFRESH_SECONDS, 5 * (time.monotonic() - reading))
                if time.monotonic() >= next_poll:
                    try:
                        pipeline.poll_once()
                    except Exception:  # noqa: BLE001 - a failed scheduled run: the next tick is the retry
                        outcome.poller_errors.append(traceback.format_exc())
                        display.log("poller function error (the next run retries):\n"
                                    + outcome.poller_errors[-1].rstrip())
                    next_poll = time.monotonic() + poll_interval
                pipeline.collect_results()
                tracker.take(pipeline.results)
                if tracker.complete:
                    outcome.finished = True
                    return outcome
                if time.monotonic() >= deadline:
                    outcome.reason = "timeout"
                    return outcome
                # A message that left the queue unaccepted (to the dead-letter queue) never yields an event.
                if not took and pipeline.queue_depth() == 0:
                    tracker.refresh(tracker.lost())  # a record, once written, stays: re-read only the unknown
                    quiet_turns = quiet_turns + 1 if len(tracker.lost()) == len(tracker.missing) else 0
                    if quiet_turns >= 2:
                        outcome.reason = "lost"
                        return outcome
                else:
                    quiet_turns = 0
                if not took:
                    time.sleep(max(0.0, min(next_poll, deadline) - time.monotonic()))
    except KeyboardInterrupt:
        outcome.reason = "interrupted"
        return outcome


def progress_text(counts: dict[str, int], pipeline: Any) -> str:
    total = counts["total"]
    percent = 100 * counts["finished"] // total if total else 100
    running = f"running {pipeline.running} | " if pipeline.running else ""
    return (f"{counts['finished']:,}/{total:,} finished ({percent}%) | {counts['accepted']:,} accepted, "
            f"{counts['rejected']:,} rejected | {counts['activities']:,} activities | {running}"
            f"runs: intake {pipeline.intake_invocations}, poller {pipeline.poller_invocations}")


def check_fresh(tracker: Tracker) -> None:
    """Refuse requests the table already knows: the service would ignore them and no event would come."""
    tracker.refresh(list(tracker.expected))
    known = [key for key, record in tracker.records.items() if record is not None]
    if known:
        shown = ", ".join(tracker.expected[key].request_id for key in known[:5])
        raise RunnerError(f"{len(known)} of these requests were already processed by this stack ({shown}"
                          f"{', ...' if len(known) > 5 else ''}); the service would ignore them as duplicates, "
                          "so no result event would come. Use new request ids.")


# --------------------------------------------------------------------------- report


def render_table(rows: list[tuple[Any, ...]], header: tuple[str, ...] | None = None, indent: str = "  ") -> str:
    """Columns aligned: text left, numbers right."""
    table = ([header] if header else []) + [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    numeric = [all(str(row[i]).replace(",", "").replace(".", "").isdigit() or row[i] == ""
                   for row in table[1 if header else 0:]) for i in range(len(widths))]
    lines = []
    for row in table:
        cells = [str(cell).rjust(width) if is_number else str(cell).ljust(width)
                 for cell, width, is_number in zip(row, widths, numeric)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return "\n".join(lines)


def cc_endpoint(method: str, path: str) -> str:
    from devkit.simulator import ACTIVITIES, TAGGINGS_REMOVE, TOKEN_PATH

    if path == TAGGINGS_REMOVE:
        return "create (POST contacts_taggings_remove)"
    if path == ACTIVITIES:
        return "list (GET activities)"
    if path.startswith(ACTIVITIES + "/"):
        return "get (GET activities/{id})"
    if path == TOKEN_PATH:
        return "token (POST oauth2 token)"
    return f"{method} {path}"


def report(out: TextIO, *, tracker: Tracker, pipeline: Any, aws: Aws, cc: ConstantContact, outcome: Outcome,
           quiet: bool, elapsed: float, phases: dict[str, float], dlq_depth: int, dlq_before: int) -> None:
    events = [tracker.events[key] for key in tracker.expected if key in tracker.events]
    if not quiet and events:
        shown = events if len(events) <= EVENTS_SHOWN_IN_FULL else events[:EVENTS_SHOWN_WHEN_MANY]
        out.write(f"Result events ({len(events)})\n")
        for event in shown:
            out.write(json.dumps({k: v for k, v in event.items() if k != "_attributes"}, indent=2) + "\n")
        if len(shown) < len(events):
            out.write(f"... and {len(events) - len(shown)} more result events (--quiet hides them all)\n")
        out.write("\n")

    counts = tracker.counts()
    states = Counter(event.get("state") for event in events)
    rows: list[tuple[Any, ...]] = [("requests", f"{counts['total']:,}")]
    rows += [(f"  {state}", f"{states[state]:,}") for state in (*STATE_ORDER, *sorted(set(states) - set(STATE_ORDER)))
             if states[state]]
    if tracker.missing:
        rows.append(("  no final state", f"{len(tracker.missing):,}"))
    rows.append(("activities created", f"{counts['activities']:,}"))
    calls = cc.simulator.calls if cc.simulator is not None else None
    if calls is not None:
        rows.append(("throttled (429)", f"{sum(1 for call in calls if call.status == 429):,}"))
    new_in_dlq = f" ({dlq_depth - dlq_before:+,} in this run)" if dlq_before else ""
    rows.append(("dead-letter queue depth", f"{dlq_depth:,}{new_in_dlq}"))
    rows.append(("elapsed", f"{elapsed:.1f} s (" + ", ".join(f"{name} {seconds:.1f} s"
                                                           for name, seconds in phases.items()) + ")"))
    rows.append(("function runs", f"intake {pipeline.intake_invocations}, poller {pipeline.poller_invocations}"))
    if pipeline.intake_errors or outcome.poller_errors:
        rows.append(("function errors", f"intake {len(pipeline.intake_errors)}, poller {len(outcome.poller_errors)}"))
    if tracker.unexpected:
        rows.append(("other result events", f"{tracker.unexpected:,} (requests this run did not send)"))
    out.write("Summary\n" + render_table(rows) + "\n\n")

    if calls is None:
        out.write("Constant Contact calls: not recorded (real API; see the functions' ConstantContactCalls metric)\n")
    else:
        by_call = Counter((cc_endpoint(call.method, call.path), str(call.status or "dropped")) for call in calls)
        table = [(endpoint, status, f"{count:,}") for (endpoint, status), count in sorted(by_call.items())]
        table.append(("total", "", f"{len(calls):,}"))
        out.write("Constant Contact calls\n" + render_table(table, ("endpoint", "status", "calls")) + "\n")
        if cc.simulator.malformed:
            out.write(f"WARNING: the simulator refused {len(cc.simulator.malformed)} malformed call(s), e.g. "
                      f"{cc.simulator.malformed[0]}\n")
    out.write(f"\nAWS: {aws.description}\nConstant Contact: {cc.description}\n")
    out.flush()


def failure_message(tracker: Tracker, outcome: Outcome, timeout: float, dlq_depth: int) -> str:
    missing = tracker.missing
    ids = ", ".join(tracker.expected[key].request_id for key in missing[:5]) + (
        f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    total = len(tracker.expected)
    if outcome.reason == "lost":
        return (f"FAILED: {len(missing)} of {total} requests can never reach a final state: their messages left "
                f"the intake queue without being accepted (dead-letter queue depth {dlq_depth}). Requests: {ids}")
    why = "; ".join(f"{count} {reason}" for reason, count in tracker.waiting_reasons().most_common())
    if outcome.reason == "interrupted":
        return f"INTERRUPTED: {len(missing)} of {total} requests had not reached a final state ({why}). Requests: {ids}"
    return (f"FAILED: {len(missing)} of {total} requests reached no final state within the {timeout:g} s timeout "
            f"({why}; dead-letter queue depth {dlq_depth}). Requests: {ids}. A longer --timeout or a higher --speed "
            "may help.")


# --------------------------------------------------------------------------- CLI


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
        prog="python -m devkit.runner", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Run the whole untag pipeline on this machine: embedded AWS (moto) built from template.yaml, "
                    "the Constant Contact simulator, and both functions driven by their emulated event sources.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--requests", metavar="FILE", help="JSON-lines file of untag requests (default: events/)")
    source.add_argument("--generate", metavar="N", type=positive_int, help="generate N single-contact requests")
    parser.add_argument("--save-requests", metavar="FILE",
                        help="write the requests this run would send as JSON lines to FILE and exit")
    knobs = parser.add_argument_group("knobs")
    knobs.add_argument("--faults", metavar="RATE", type=fault_rate, default=0.0,
                       help="share of simulator API calls that fail (500, 503, 429 or slow); default 0")
    knobs.add_argument("--speed", metavar="X", type=positive_float, default=1.0,
                       help=f"divide activity durations ({ACTIVITY_SECONDS:g} s) and poll intervals by X; default 1")
    knobs.add_argument("--batch-size", metavar="N", type=positive_int, default=None,
                       help="records per intake invocation (default: the template's IntakeBatchSize)")
    knobs.add_argument("--poll-interval", metavar="SECONDS", type=positive_float, default=1.0,
                       help="seconds between poller runs, divided by --speed (deployed: 1 minute); default 1")
    knobs.add_argument("--timeout", metavar="SECONDS", type=positive_float, default=300.0,
                       help="give up when not every request has a result event after this long; default 300")
    knobs.add_argument("--seed", type=int, default=None,
                       help="seed of fault injection and of generated request ids (default: random, printed)")
    output = parser.add_argument_group("output")
    output.add_argument("--quiet", action="store_true", help="do not print the result events, only the summary")
    output.add_argument("--verbose", action="store_true",
                        help="keep the functions' own JSON logs (INFO) and EMF metric lines")
    rehearsal = parser.add_argument_group("rehearsal against real services (see below)")
    rehearsal.add_argument("--cc-base-url", metavar="URL", help="real Constant Contact API root, e.g. "
                                                                 "https://api.cc.email/v3")
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
        parser.error("--stack-outputs needs --cc-base-url: the simulator's tokens must not replace the deployed "
                     "stack's tokens")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    return args


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def load_bodies(args: argparse.Namespace) -> tuple[list[str], str]:
    if args.requests:
        bodies = read_requests(args.requests)
        not_json = sum(1 for body in bodies if not _is_json(body))
        if not_json:
            print(f"note: {not_json} line(s) of {args.requests} are not JSON; they are sent as they are and the "
                  "service rejects them", file=sys.stderr)
        return bodies, f"{len(bodies):,} requests from {args.requests}"
    if args.generate:
        bodies = generate_requests(args.generate, f"{args.seed:06d}")
        return bodies, f"{len(bodies):,} generated requests ({args.generate:,} single-contact + 4 others)"
    bodies = sample_requests()
    return bodies, f"{len(bodies)} sample requests from events/{' and events/'.join(SAMPLE_EVENT_FILES)}"


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
            _route_function_logs(function_output, self.out)
            dlq_before = pipeline.queue_depth(aws.stack.dlq_url)

            driving = time.monotonic()
            outcome = drive(pipeline, tracker, display, poll_interval=args.poll_interval / args.speed,
                            timeout=args.timeout)
            self.phases["pipeline"] = time.monotonic() - driving
            tracker.refresh(settled_too=True)
            display.progress(progress_text(tracker.counts(), pipeline), force=True)
            display.close()
            dlq_depth = pipeline.queue_depth(aws.stack.dlq_url)
            sys.stdout = self.out
            report(self.out, tracker=tracker, pipeline=pipeline, aws=aws, cc=cc, outcome=outcome, quiet=args.quiet,
                   elapsed=time.monotonic() - self.started, phases=self.phases, dlq_depth=dlq_depth,
                   dlq_before=dlq_before)
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
            boto3.client("secretsmanager").put_secret_value(SecretId=aws.stack.secret_id,
                                                            SecretString=json.dumps(cc.tokens))
            if cc.token_file is not None:  # whatever happens next, before the embedded AWS stops
                exits.callback(self.write_back_tokens, aws, cc)
        pipeline = LocalPipeline(aws.stack, environment=function_environment(args, cc), batch_size=args.batch_size,
                                 redelivery_delay=max(1, math.ceil(REDELIVERY_SECONDS / args.speed)))
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
        display.log(f"sent {self.described} to the intake queue: {len(tracker.expected):,} result events expected "
                    f"(batch size {pipeline.batch_size}, seed {args.seed})")
        return aws, cc, pipeline, tracker

    def write_back_tokens(self, aws: Aws, cc: ConstantContact) -> None:
        """Tokens refreshed during the run must not be lost: a rotated refresh token is the only valid one."""
        import boto3

        try:
            current = json.loads(boto3.client("secretsmanager").get_secret_value(
                SecretId=aws.stack.secret_id)["SecretString"])
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
            self.display.log(f"the tokens were refreshed during the run; the stack's secret holds the new ones "
                             f"and {cc.token_file} is out of date")


if __name__ == "__main__":
    sys.exit(main())
