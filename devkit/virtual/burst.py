"""A burst of requests through the deployed event flow, in virtual time (see ``devkit.virtual``).

The intake queue and its dead-letter queue are moto's, provisioned from template.yaml; the SQS
event source mapping and the poller's schedule are emulated here on the virtual clock.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from devkit.pipeline import (
    delete_messages,
    function_timeout,
    invoke_intake,
    load_handler,
    receive_batch,
    scheduled_event,
    send_messages,
    sqs_event,
    template_parameter,
)
from devkit.virtual.clock import START, VirtualClock
from devkit.virtual.instances import virtual_context, virtual_services
from devkit.virtual.results import BurstResult, Invocation, max_calls_in_window
from devkit.virtual.sandbox import quicker_moto_sqs, scoped_environment

TAGGINGS_REMOVE = "/v3/activities/contacts_taggings_remove"


@dataclass(frozen=True)
class BurstOptions:
    """How a burst is emulated; the defaults are ``make bench``'s."""

    requests_per_second: float | None = None  # CC_REQUESTS_PER_SECOND; None: the template's maximum
    cc_latency: float = 0.1  # virtual seconds each Constant Contact call takes
    aws_latency: float = 0.005  # virtual seconds each AWS call a function makes takes
    first_tick: float = 30.0  # the poller's first schedule tick, seconds after the burst
    seconds_to_finish: float = 10.0  # an activity's run in the simulator
    environment: Mapping[str, str] = field(default_factory=dict)  # the functions' variables overridden
    limit_factor: float = 4.0  # give up after this many times the physical limit (at least an hour)
    intake_timeout: float | None = None  # replaces template.yaml's (tests: an intake short of time)


def run_burst(requests: int = 3000, **options: Any) -> BurstResult:
    """Send ``requests`` single-contact requests, each removing its own tag, at once; drive the functions in
    virtual time until every request has its activity (or ``limit_factor`` x the physical limit, at least an
    hour, has passed). ``options`` are those of :class:`BurstOptions`."""
    began = time.perf_counter()
    from moto import mock_aws

    with scoped_environment(), mock_aws(), quicker_moto_sqs():
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "virtual")
        emulation = _Emulation(requests, BurstOptions(**options))
        try:
            result = emulation.run()
        finally:
            emulation.close()
    result.real_seconds = time.perf_counter() - began
    return result


def rate_seconds(expression: str) -> float:
    """Seconds between ticks of a ``rate(...)`` schedule expression."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise ValueError(f"only rate(...) schedules are emulated, not {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


class _Emulation:
    def __init__(self, requests: int, options: BurstOptions):
        from devkit.simulator import ConstantContactSimulator
        from devkit.stack import load_template

        template = load_template()
        rate_parameter = template["Parameters"]["CcRequestsPerSecond"]
        self.rate = float(options.requests_per_second or rate_parameter["MaxValue"])
        self.requests = requests
        self.options = options
        self.clock = VirtualClock(START)
        # The real API's limit (4 a second) and quota; activities finish a few seconds after creation.
        self.simulator = ConstantContactSimulator(
            rate_limit_per_second=4.0,
            daily_quota=10_000,
            seconds_to_finish=options.seconds_to_finish,
            clock=self.clock.now,
        ).start()
        try:
            self._set_up(template, rate_parameter)
        except BaseException:
            self.simulator.stop()
            raise

    def _set_up(self, template: dict, rate_parameter: dict) -> None:
        import boto3

        from devkit.stack import provision

        options = self.options
        self.stack = provision(parameters={"CcRequestsPerSecond": self.rate})
        aws = boto3.session.Session()
        self.sqs = aws.client("sqs")  # the event source mapping's own calls: no virtual latency
        self.dynamodb = aws.client("dynamodb")  # reads the end state
        aws.client("secretsmanager").put_secret_value(
            SecretId=self.stack.secret_id, SecretString=json.dumps(self.simulator.issue_tokens())
        )
        quiet = {
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        os.environ.update(quiet)
        self.intake = load_handler(self.stack, "IntakeFunction")  # puts the shared layer on the path
        self.poller = load_handler(self.stack, "PollerFunction")
        from untag.config import ENVIRONMENT, load_config
        from untag.observability import logger
        from untag.services import Services

        self._log_level = logger.log_level  # an earlier import may have set another: thousands of lines
        logger.setLevel("ERROR")
        for name in ENVIRONMENT.values():  # as deployed: only what template.yaml sets, and the overrides
            os.environ.pop(name, None)
        os.environ.update(self.stack.function_environment("PollerFunction"))
        os.environ.update(self.stack.function_environment("IntakeFunction"))
        os.environ.update(
            {
                "CC_API_BASE_URL": self.simulator.base_url,
                "CC_TOKEN_URL": self.simulator.token_url,
                **quiet,
                **options.environment,
            }
        )
        self.config = load_config()
        self._make_services = virtual_services(
            Services,
            self.clock,
            boto3.session.Session(),
            cc_latency=options.cc_latency,
            aws_latency=options.aws_latency,
        )
        self._instances: dict[str, Any] = {}
        self._current = threading.local()
        for handler in (self.intake, self.poller):  # each emulated instance gets its own services
            inspect.unwrap(handler).__globals__["current_services"] = lambda: self._current.services

        queue = template["Resources"]["IntakeQueue"]["Properties"]
        self.visibility_timeout = float(queue["VisibilityTimeout"])
        self.max_receive_count = int(template_parameter(self.stack, "MaxReceiveCount"))
        self.batch_size = int(template_parameter(self.stack, "IntakeBatchSize"))
        self.batching_window = float(template_parameter(self.stack, "IntakeBatchingWindowSeconds"))
        self.concurrency = int(template_parameter(self.stack, "IntakeMaxConcurrency"))
        self.intake_timeout = options.intake_timeout or function_timeout(self.stack, "IntakeFunction")
        self.poller_timeout = function_timeout(self.stack, "PollerFunction")
        self.period = rate_seconds(template_parameter(self.stack, "PollSchedule"))
        self.deadline = START + max(options.limit_factor * self.requests / self.rate, 3600.0)
        self.region = os.environ["AWS_DEFAULT_REGION"]
        self.settings = {
            "cc_requests_per_second": self.rate,
            "template_default_requests_per_second": float(rate_parameter["Default"]),
            "cc_latency_seconds": options.cc_latency,
            "aws_latency_seconds": options.aws_latency,
            "activity_seconds_to_finish": options.seconds_to_finish,
            "intake_batch_size": self.batch_size,
            "intake_batching_window_seconds": self.batching_window,
            "intake_max_concurrency": self.concurrency,
            "intake_timeout_seconds": self.intake_timeout,
            "poller_timeout_seconds": self.poller_timeout,
            "poll_schedule_seconds": self.period,
            "first_tick_seconds": options.first_tick,
            "visibility_timeout_seconds": self.visibility_timeout,
            "max_receive_count": self.max_receive_count,
            "poller_run_seconds": self.config.poller_run_seconds,
            "time_reserve_seconds": self.config.time_reserve_seconds,
            **options.environment,
        }
        self.expected = {f"t{n}" for n in range(self.requests)}
        self.created: set[str] = set()
        self.duplicates = 0
        self.drained_at: float | None = None
        self._seen_calls = 0
        self.receives: Counter[str] = Counter()
        self.hidden: dict[str, tuple[str, float]] = {}  # message id -> (receipt handle, virtual time it shows again)
        self.invocations: list[Invocation] = []
        self.over_timeout = 0
        self.skipped_ticks = 0

    def close(self) -> None:
        self.simulator.stop()
        if hasattr(self, "_log_level"):
            from untag.observability import logger

            logger.setLevel(self._log_level)

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> BurstResult:
        bodies = [
            json.dumps({"request_id": f"burst-{n}", "source": {"contact_ids": [f"c{n}"]}, "tag_ids": [f"t{n}"]})
            for n in range(self.requests)
        ]
        send_messages(self.sqs, self.stack.queue_url, bodies)
        for worker in range(self.concurrency):
            self.clock.spawn(lambda worker=worker: self._event_source(worker), f"esm-{worker}")
        self.clock.spawn(self._schedule, "schedule")
        self.clock.run()
        self._note_calls()
        calls = self.simulator.calls
        return BurstResult(
            requests=self.requests,
            requests_per_second=self.rate,
            drained_seconds=None if self.drained_at is None else self.drained_at - START,
            physical_limit_seconds=self.requests / self.rate,
            posts=sum(1 for c in calls if c.method == "POST" and c.path == TAGGINGS_REMOVE and c.status == 201),
            duplicate_posts=self.duplicates,
            throttled=sum(1 for c in calls if c.status == 429),
            gets=sum(1 for c in calls if c.method == "GET"),
            max_calls_in_one_second=max_calls_in_window([c.at for c in calls if not c.path.startswith("/oauth2")]),
            dlq_depth=self._depth(self.stack.dlq_url),
            queue_depth=self._depth(self.stack.queue_url),
            max_receives=max(self.receives.values(), default=0),
            receives=Counter(self.receives.values()),
            invocations=self.invocations,
            over_timeout=self.over_timeout,
            skipped_ticks=self.skipped_ticks,
            requests_left_creating=self._left_creating(),
            errors=list(self.clock.errors),
            settings=self.settings,
        )

    def _stopped(self) -> bool:
        self._note_calls()
        return self.drained_at is not None or self.clock.now() > self.deadline or bool(self.clock.errors)

    def _note_calls(self) -> None:
        """Follow the simulator's log: which requests have their activity, and when the last one got it."""
        calls = self.simulator.calls
        for call in calls[self._seen_calls :]:
            if call.method == "POST" and call.path == TAGGINGS_REMOVE and call.status == 201:
                for tag in call.body["tag_ids"]:
                    if tag in self.created:
                        self.duplicates += 1
                    self.created.add(tag)
                if self.drained_at is None and self.created >= self.expected:
                    # when Constant Contact's answer is back
                    self.drained_at = call.at + self.options.cc_latency
        self._seen_calls = len(calls)

    @contextlib.contextmanager
    def _invocation(self, function: str, instance: str, timeout: float) -> Iterator[Invocation]:
        """One invocation: the instance's services are this thread's; its calls, its end and an overrun are noted."""
        started = self.clock.now()
        if instance not in self._instances:
            self._instances[instance] = self._make_services(self.config)
        services = self._current.services = self._instances[instance]
        log = services.constant_contact.log
        before = len(log)
        invocation = Invocation(function, instance, started - START, started - START)
        yield invocation
        invocation.ended = self.clock.now() - START
        invocation.note_calls(log[before:], started)
        if invocation.ended - invocation.started > timeout:
            invocation.over_timeout = True  # Lambda would have ended it
            self.over_timeout += 1
        self.invocations.append(invocation)

    # -- the SQS event source mapping -------------------------------------------------------

    def _event_source(self, worker: int) -> None:
        """One of the mapping's concurrent pollers: a batch at a time, one intake instance."""
        instance = f"intake-{worker}"
        while not self._stopped():
            self._show_again()
            messages = self._receive(self.batch_size)
            if messages and len(messages) < self.batch_size and self.batching_window:
                window_ends = self.clock.now() + self.batching_window
                while len(messages) < self.batch_size and self.clock.now() < window_ends:
                    self.clock.sleep(min(1.0, window_ends - self.clock.now()))
                    self._show_again()
                    messages += self._receive(self.batch_size - len(messages))
            if not messages:
                shows = [at for _, at in self.hidden.values()]
                self.clock.sleep(max(0.001, min([20.0, *(at - self.clock.now() for at in shows)])))
                continue
            self._invoke_intake(instance, messages)

    def _receive(self, wanted: int) -> list[dict[str, Any]]:
        messages = receive_batch(self.sqs, self.stack.queue_url, wanted)
        for message in messages:
            self.receives[message["MessageId"]] += 1
            message["received_at"] = self.clock.now()  # its visibility timeout starts now
        return messages

    def _show_again(self) -> None:
        """Records reported as failures become visible when their visibility timeout ends (virtual time)."""
        now = self.clock.now()
        for message_id, (receipt, at) in list(self.hidden.items()):
            if at <= now:
                del self.hidden[message_id]
                self.sqs.change_message_visibility(
                    QueueUrl=self.stack.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
                )

    def _invoke_intake(self, instance: str, messages: list[dict[str, Any]]) -> None:
        event = sqs_event(messages, self.stack.queue_arn, self.region)
        for record in event["Records"]:  # what SQS would say in virtual time
            record["attributes"].update(
                SentTimestamp=str(int(START * 1000)), ApproximateReceiveCount=str(self.receives[record["messageId"]])
            )
        with self._invocation("intake", instance, self.intake_timeout) as invocation:
            context = virtual_context(self.clock, "untag-intake", self.intake_timeout)
            failed, invocation.error = invoke_intake(self.intake, event, context)
        if invocation.over_timeout:  # every record comes back
            failed = {message["MessageId"] for message in messages}
        invocation.records, invocation.failed = len(messages), len(failed)
        delete_messages(self.sqs, self.stack.queue_url, [m for m in messages if m["MessageId"] not in failed])
        for message in messages:
            if message["MessageId"] in failed:  # hidden (in moto: for long) until its virtual visibility timeout
                self.sqs.change_message_visibility(
                    QueueUrl=self.stack.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=36_000
                )
                self.hidden[message["MessageId"]] = (
                    message["ReceiptHandle"],
                    message["received_at"] + self.visibility_timeout,
                )

    # -- the poller's schedule --------------------------------------------------------------

    def _schedule(self) -> None:
        tick = START + self.options.first_tick
        while not self._stopped():
            self.clock.sleep(tick - self.clock.now())
            if self._stopped():
                return
            with self._invocation("poller", "poller", self.poller_timeout) as invocation:
                try:
                    self.poller(
                        scheduled_event(self.region), virtual_context(self.clock, "untag-poller", self.poller_timeout)
                    )
                except Exception:  # noqa: BLE001 - the next tick is the retry
                    invocation.error = traceback.format_exc()
            tick += self.period
            while tick < self.clock.now():  # reserved concurrency 1: a tick during a run finds no instance
                tick += self.period
                self.skipped_ticks += 1

    # -- reading the end state --------------------------------------------------------------

    def _depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )
        return sum(int(value) for value in attributes["Attributes"].values())

    def _left_creating(self) -> int:
        from untag.store import ActivityStore

        store = ActivityStore(lambda: self.dynamodb, self.stack.table_name)
        return len(store.due_creations(until=START * 10, limit=self.requests + 1))
