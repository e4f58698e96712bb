"""The deployed event flow in virtual time: a burst of requests drained at the real rate limit, in seconds of real time.

Used by ``make bench`` (3,000 requests) and by a test (a few dozen). Everything that takes time
takes VIRTUAL time: the handlers (the ones template.yaml names) get ``Services`` with a virtual
clock and sleep (rate-limiter slots, back-off, token lock), their Lambda context counts down
on the virtual clock, the Constant Contact simulator stamps arrivals and keeps its rate and
quota windows on it, and each Constant Contact call and each AWS call made by a function
advances it by a modelled latency.

Each emulated Lambda invocation runs on its own thread, and :class:`VirtualClock` runs one
thread at a time: the clock moves only when every thread waits (a virtual sleep), to the
earliest wake-up (ties in the order the sleeps began), so runs are deterministic and
concurrent invocations really overlap in virtual time, sharing the one rate limit.

What is emulated from template.yaml: the intake queue and its dead-letter queue (moto SQS,
with the queue's redrive policy), the SQS event source mapping (``IntakeBatchSize``,
``IntakeBatchingWindowSeconds``, at most ``IntakeMaxConcurrency`` intake invocations at once,
each with the function's ``Timeout``; records reported in ``batchItemFailures`` come back
after the queue's ``VisibilityTimeout`` as another receive), and the poller on its schedule
(``PollSchedule``, reserved concurrency 1: a tick during a run is skipped) with its own
``Timeout``. Not modelled: the event source mapping's own SQS calls take no virtual time,
cold starts take none, and an instance's compute between calls takes none.
"""

from __future__ import annotations

import contextlib
import heapq
import inspect
import itertools
import json
import os
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from devkit.pipeline import (
    LambdaContext,
    function_timeout,
    load_handler,
    receive_batch,
    scheduled_event,
    sqs_event,
    template_parameter,
)

START = 1_900_000_000.0  # virtual epoch of the burst (2030-03-17T17:46:40Z): whole seconds, far from midnight UTC
TAGGINGS_REMOVE = "/v3/activities/contacts_taggings_remove"


class VirtualClock:
    """Virtual epoch seconds shared by cooperating threads (``spawn``), one running at a time.

    ``sleep`` hands the turn to the thread that wakes up first; the clock jumps to its wake-up
    time. Time is kept in whole microseconds so that rate-limiter slots land exactly.
    """

    def __init__(self, start: float = START):
        self._micros = round(start * 1_000_000)
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._turns: dict[int, threading.Condition] = {}
        self._waiting: list[tuple[int, int, int]] = []  # (wake-up micros, order, thread id)
        self._order = itertools.count()
        self._ids = itertools.count(1)
        self._running: int | None = None
        self._live = 0
        self._local = threading.local()
        self.errors: list[str] = []  # tracebacks of threads that raised

    def now(self) -> float:
        return self._micros / 1_000_000

    def sleep(self, seconds: float) -> None:
        me = getattr(self._local, "id", None)
        if me is None:
            raise RuntimeError("a virtual sleep outside the clock's threads")
        with self._lock:
            self._wait_turn(me, self._micros + max(0, round(seconds * 1_000_000)))

    def spawn(self, target: Callable[[], None], name: str) -> None:
        """Start ``target`` on a new thread, at the current virtual time (from the main thread or a clock thread)."""
        with self._lock:
            me = next(self._ids)
            self._turns[me] = threading.Condition(self._lock)
            self._live += 1
            heapq.heappush(self._waiting, (self._micros, next(self._order), me))
        threading.Thread(target=self._body, args=(me, target), name=name, daemon=True).start()

    def run(self) -> None:
        """Give the first turn and wait until every spawned thread has returned."""
        with self._lock:
            if self._running is None:
                self._hand_over()
            while self._live:
                self._finished.wait()

    def _body(self, me: int, target: Callable[[], None]) -> None:
        self._local.id = me
        with self._lock:
            while self._running != me:
                self._turns[me].wait()
        try:
            target()
        except BaseException:  # noqa: BLE001 - reported by the caller; the other threads go on
            self.errors.append(traceback.format_exc())
        finally:
            with self._lock:
                self._live -= 1
                del self._turns[me]
                self._hand_over()
                if not self._live:
                    self._finished.notify_all()

    def _wait_turn(self, me: int, wake: int) -> None:
        heapq.heappush(self._waiting, (wake, next(self._order), me))
        self._hand_over()
        while self._running != me:
            self._turns[me].wait()

    def _hand_over(self) -> None:
        if not self._waiting:
            self._running = None
            return
        wake, _, chosen = heapq.heappop(self._waiting)
        self._micros = max(self._micros, wake)
        self._running = chosen
        self._turns[chosen].notify()


def virtual_services(base: type, clock: VirtualClock, session: Any, *, cc_latency: float, aws_latency: float):
    """Services for emulated Lambda instances (one each): virtual clock and sleep, and the modelled latencies.

    ``aws_latency`` follows every AWS call the functions make; ``cc_latency`` every call of the Constant
    Contact client (a retry inside one, after a 401 or a 429, shares it), after it reached the simulator.
    """

    @dataclass
    class VirtualServices(base):
        def aws(self, service: str) -> Any:
            if service not in self._clients:
                client = session.client(service)
                client.meta.events.register("after-call", lambda **_: self.sleep(aws_latency))
                self._clients[service] = client
            return self._clients[service]

        @cached_property
        def constant_contact(self):
            return _Latency(base.constant_contact.func(self), clock, cc_latency)

    def make(config: Any) -> Any:
        return VirtualServices(config, clock=clock.now, sleep=clock.sleep)

    return make


class _Latency:
    """The Constant Contact client, each of whose calls takes ``seconds`` more (the answer's way back);
    ``log`` lists (method, virtual time the call ended) for this instance."""

    def __init__(self, client: Any, clock: VirtualClock, seconds: float):
        self._client, self._clock, self._seconds = client, clock, seconds
        self.log: list[tuple[str, float]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            finally:
                self._clock.sleep(self._seconds)
                self.log.append((name, self._clock.now()))

        return call


@dataclass
class VirtualContext(LambdaContext):
    """The Lambda context, counting down to the function's timeout on a virtual clock."""

    clock: Callable[[], float] = time.monotonic

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (self.clock() - self.started)) * 1000))


def _virtual_context(clock: VirtualClock, function_name: str, timeout: float) -> VirtualContext:
    return VirtualContext(function_name, timeout, started=clock.now(), clock=clock.now)


def max_calls_in_window(times: list[float], window: float = 1.0) -> int:
    """The most calls in any half-open window [t, t + window) (times in seconds; counted in microseconds)."""
    stamps = sorted(round(t * 1_000_000) for t in times)
    span = round(window * 1_000_000)
    most, first = 0, 0
    for last, stamp in enumerate(stamps):
        while stamp - stamps[first] >= span:
            first += 1
        most = max(most, last - first + 1)
    return most


def rate_seconds(expression: str) -> float:
    """Seconds between ticks of a ``rate(...)`` schedule expression."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise ValueError(f"only rate(...) schedules are emulated, not {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


@contextlib.contextmanager
def _scoped_environment() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _quicker_moto_sqs() -> Iterator[None]:
    """moto's SQS computes every attribute of a queue (each counting every message, reading the clock
    through datetime arithmetic per message) on each message sent and, three times, on each message
    received: quadratic in the queue's length, minutes for a burst of 3,000. The same answers, sooner:
    the clock read with time.time(), the retention check reading its one attribute."""
    from unittest import mock

    from moto.core.utils import unix_time
    from moto.sqs import models

    def now(dt: Any = None) -> float:
        return time.time() if dt is None else unix_time(dt)

    def retained(backend: Any, queue_name: str, message: Any) -> bool:
        period = int(backend.get_queue(queue_name).message_retention_period)
        return period + message.sent_timestamp / 1000 > time.time()

    with (
        mock.patch.object(models, "unix_time", now),
        mock.patch.object(models, "unix_time_millis", lambda dt=None: now(dt) * 1000.0),
        mock.patch.object(models.SQSBackend, "is_message_valid_based_on_retention_period", retained),
    ):
        yield


@dataclass
class Invocation:
    function: str  # "intake" or "poller"
    instance: str
    started: float  # virtual seconds since the burst
    ended: float
    records: int = 0
    failed: int = 0
    posts: int = 0  # activities this invocation created
    first_post: float | None = None  # seconds after its start its first / last create call ended
    last_post: float | None = None
    error: str = ""

    def note_calls(self, calls: list[tuple[str, float]], start: float) -> None:
        ends = [at - start for name, at in calls if name == "create_tag_removal"]
        self.posts = len(ends)
        self.first_post, self.last_post = (min(ends), max(ends)) if ends else (None, None)


@dataclass
class BurstResult:
    requests: int
    requests_per_second: float
    drained_seconds: float | None  # virtual seconds from the burst to the last activity created (None: not drained)
    physical_limit_seconds: float
    posts: int  # POSTs Constant Contact answered 201
    duplicate_posts: int  # of those, POSTs for a request that already had its activity
    throttled: int  # 429 answers
    gets: int
    max_calls_in_one_second: int
    dlq_depth: int
    queue_depth: int  # messages still in the intake queue at the end
    max_receives: int
    receives: Counter[int] = field(default_factory=Counter)  # receive count -> messages
    invocations: list[Invocation] = field(default_factory=list)
    over_timeout: int = 0  # invocations that ran past their function's Timeout (Lambda would have killed them)
    skipped_ticks: int = 0  # schedule ticks that fell during a poller run
    requests_left_creating: int = 0  # requests still on the creation work list at the end
    errors: list[str] = field(default_factory=list)
    real_seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if self.drained_seconds is None else self.drained_seconds / self.physical_limit_seconds

    def idle_seconds(self) -> float:
        """Virtual seconds before the drain during which no function was running."""
        end = self.drained_seconds or 0.0
        covered, reach = 0.0, 0.0
        for started, ended in sorted((i.started, i.ended) for i in self.invocations):
            started, ended = max(started, reach), min(ended, end)
            if ended > started:
                covered += ended - started
                reach = ended
        return end - covered


def run_burst(
    requests: int = 3000,
    *,
    requests_per_second: float | None = None,
    cc_latency: float = 0.1,
    aws_latency: float = 0.005,
    first_tick: float = 30.0,
    seconds_to_finish: float = 10.0,
    environment: dict[str, str] | None = None,
    limit_factor: float = 4.0,
    intake_timeout: float | None = None,
) -> BurstResult:
    """Send ``requests`` single-contact requests, each removing its own tag, at once; drive the functions in
    virtual time until every request has its activity (or ``limit_factor`` x the physical limit, at least an
    hour, has passed). ``intake_timeout`` replaces template.yaml's (tests: an intake short of time leaves
    records for redelivery)."""
    began = time.perf_counter()
    from moto import mock_aws

    with _scoped_environment(), mock_aws(), _quicker_moto_sqs():
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "virtual")
        emulation = _Emulation(
            requests,
            requests_per_second=requests_per_second,
            cc_latency=cc_latency,
            aws_latency=aws_latency,
            first_tick=first_tick,
            seconds_to_finish=seconds_to_finish,
            environment=environment or {},
            limit_factor=limit_factor,
            intake_timeout=intake_timeout,
        )
        try:
            result = emulation.run()
        finally:
            emulation.close()
    result.real_seconds = time.perf_counter() - began
    return result


class _Emulation:
    def __init__(
        self,
        requests: int,
        *,
        requests_per_second: float | None,
        cc_latency: float,
        aws_latency: float,
        first_tick: float,
        seconds_to_finish: float,
        environment: dict[str, str],
        limit_factor: float,
        intake_timeout: float | None,
    ):
        from devkit.simulator import ConstantContactSimulator
        from devkit.stack import load_template

        template = load_template()
        rate_parameter = template["Parameters"]["CcRequestsPerSecond"]
        self.rate = float(requests_per_second or rate_parameter["MaxValue"])
        self.requests = requests
        self.cc_latency = cc_latency
        self.clock = VirtualClock(START)
        # The real API's limit (4 a second) and quota; activities finish a few seconds after creation.
        self.simulator = ConstantContactSimulator(
            rate_limit_per_second=4.0, daily_quota=10_000, seconds_to_finish=seconds_to_finish, clock=self.clock.now
        ).start()
        try:
            self._set_up(
                template,
                requests,
                rate_parameter,
                cc_latency,
                aws_latency,
                first_tick,
                seconds_to_finish,
                environment,
                limit_factor,
                intake_timeout,
            )
        except BaseException:
            self.simulator.stop()
            raise

    def _set_up(
        self,
        template: dict,
        requests: int,
        rate_parameter: dict,
        cc_latency: float,
        aws_latency: float,
        first_tick: float,
        seconds_to_finish: float,
        environment: dict[str, str],
        limit_factor: float,
        intake_timeout: float | None,
    ) -> None:
        import boto3

        from devkit.stack import provision

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
                **environment,
            }
        )
        self.config = load_config()
        make = virtual_services(
            Services, self.clock, boto3.session.Session(), cc_latency=cc_latency, aws_latency=aws_latency
        )
        self._instances: dict[str, Any] = {}
        self._make_services = make
        self._current = threading.local()
        for handler in (self.intake, self.poller):  # each emulated instance gets its own services
            inspect.unwrap(handler).__globals__["current_services"] = lambda: self._current.services

        queue = template["Resources"]["IntakeQueue"]["Properties"]
        self.visibility_timeout = float(queue["VisibilityTimeout"])
        self.max_receive_count = int(template_parameter(self.stack, "MaxReceiveCount"))
        self.batch_size = int(template_parameter(self.stack, "IntakeBatchSize"))
        self.batching_window = float(template_parameter(self.stack, "IntakeBatchingWindowSeconds"))
        self.concurrency = int(template_parameter(self.stack, "IntakeMaxConcurrency"))
        self.intake_timeout = intake_timeout or function_timeout(self.stack, "IntakeFunction")
        self.poller_timeout = function_timeout(self.stack, "PollerFunction")
        self.period = rate_seconds(template_parameter(self.stack, "PollSchedule"))
        self.first_tick = first_tick
        self.deadline = START + max(limit_factor * requests / self.rate, 3600.0)
        self.region = os.environ["AWS_DEFAULT_REGION"]
        self.settings = {
            "cc_requests_per_second": self.rate,
            "template_default_requests_per_second": float(rate_parameter["Default"]),
            "cc_latency_seconds": cc_latency,
            "aws_latency_seconds": aws_latency,
            "activity_seconds_to_finish": seconds_to_finish,
            "intake_batch_size": self.batch_size,
            "intake_batching_window_seconds": self.batching_window,
            "intake_max_concurrency": self.concurrency,
            "intake_timeout_seconds": self.intake_timeout,
            "poller_timeout_seconds": self.poller_timeout,
            "poll_schedule_seconds": self.period,
            "first_tick_seconds": first_tick,
            "visibility_timeout_seconds": self.visibility_timeout,
            "max_receive_count": self.max_receive_count,
            "poller_run_seconds": self.config.poller_run_seconds,
            "time_reserve_seconds": self.config.time_reserve_seconds,
            **environment,
        }
        self.expected = {f"t{n}" for n in range(requests)}
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
        for start in range(0, len(bodies), 10):
            answer = self.sqs.send_message_batch(
                QueueUrl=self.stack.queue_url,
                Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start : start + 10])],
            )
            if answer.get("Failed"):
                raise RuntimeError(f"could not queue the burst: {answer['Failed']}")
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
                    self.drained_at = call.at + self.cc_latency  # when Constant Contact's answer is back
        self._seen_calls = len(calls)

    def _instance(self, name: str) -> Any:
        if name not in self._instances:
            self._instances[name] = self._make_services(self.config)
        return self._instances[name]

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
        started = self.clock.now()
        event = sqs_event(messages, self.stack.queue_arn, self.region)
        for record in event["Records"]:  # what SQS would say in virtual time
            record["attributes"].update(
                SentTimestamp=str(int(START * 1000)), ApproximateReceiveCount=str(self.receives[record["messageId"]])
            )
        services = self._current.services = self._instance(instance)
        log = services.constant_contact.log
        before = len(log)
        invocation = Invocation("intake", instance, started - START, started - START, records=len(messages))
        try:
            response = self.intake(event, _virtual_context(self.clock, "untag-intake", self.intake_timeout))
            failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", ())}
        except Exception:  # noqa: BLE001 - a function error: the whole batch comes back
            invocation.error = traceback.format_exc()
            failed = {message["MessageId"] for message in messages}
        invocation.ended = self.clock.now() - START
        invocation.note_calls(log[before:], started)
        if invocation.ended - invocation.started > self.intake_timeout:
            self.over_timeout += 1  # Lambda would have ended it: every record comes back
            failed = {message["MessageId"] for message in messages}
        invocation.failed = len(failed)
        self.invocations.append(invocation)
        done = [message for message in messages if message["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.stack.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                    for n, message in enumerate(done[start : start + 10])
                ],
            )
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
        tick = START + self.first_tick
        while not self._stopped():
            self.clock.sleep(tick - self.clock.now())
            if self._stopped():
                return
            started = self.clock.now()
            services = self._current.services = self._instance("poller")
            log = services.constant_contact.log
            before = len(log)
            invocation = Invocation("poller", "poller", started - START, started - START)
            try:
                self.poller(
                    scheduled_event(self.region), _virtual_context(self.clock, "untag-poller", self.poller_timeout)
                )
            except Exception:  # noqa: BLE001 - the next tick is the retry
                invocation.error = traceback.format_exc()
            invocation.ended = self.clock.now() - START
            invocation.note_calls(log[before:], started)
            if invocation.ended - invocation.started > self.poller_timeout:
                self.over_timeout += 1
            self.invocations.append(invocation)
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
