"""The deployed event flow, emulated on one machine: the SQS event source mapping, the schedule, the result queue.

Loads the handlers template.yaml names, feeds them the exact Lambda event shapes (an SQS
batch built from messages really received from the intake queue; a scheduled event), deletes
what the intake finished and leaves the ``batchItemFailures`` for redelivery, so the queue's
own redrive policy moves poison messages to the DLQ. Result events are read from an SQS
queue subscribed to the result topic, as a subscriber would.

By default what the intake leaves for redelivery becomes visible again at once (tests); with
``redelivery_delay=N`` it comes back after N seconds (the deployed queue waits its visibility
timeout). ``close()`` removes the results queue.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import time
import traceback
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import boto3

from devkit.stack import Stack
from untag_operator.dlq import receive_messages
from untag_operator.results import allow_topic_delivery

ROOT = Path(__file__).resolve().parent.parent
SQS_BATCH_BYTES = 262_144  # SendMessageBatch: at most 10 messages and 256 KiB of bodies per call


class RunningFunction(NamedTuple):
    stack: Stack
    logical_id: str  # the function's logical id in template.yaml


# The function whose code runs in this thread now (its module's init or its handler), else None: in Lambda
# that code runs under the function's role, so tests attribute the AWS calls made meanwhile to that role.
# A new thread starts without it; the handler returned by load_handler sets it in the thread that invokes it.
running_function: ContextVar[RunningFunction | None] = ContextVar("running_function", default=None)


def load_handler(stack: Stack, logical_id: str) -> Callable[[dict, Any], Any]:
    """Import the handler template.yaml names for a function (the domain package ``untag`` must be importable,
    as the shared layer makes it in Lambda: see ``devkit``).

    While the module initialises and while the returned handler runs, ``running_function`` names the function.
    """
    properties = stack.template["Resources"][logical_id]["Properties"]
    handler = properties.get("Handler") or stack.template.get("Globals", {}).get("Function", {}).get("Handler")
    module_name, function_name = handler.rsplit(".", 1)
    path = ROOT / properties["CodeUri"] / f"{module_name.replace('.', '/')}.py"
    spec = importlib.util.spec_from_file_location(f"{logical_id}_{module_name}", path)
    module = importlib.util.module_from_spec(spec)
    this_function = RunningFunction(stack, logical_id)
    token = running_function.set(this_function)
    try:
        spec.loader.exec_module(module)
    finally:
        running_function.reset(token)
    handler = getattr(module, function_name)

    @functools.wraps(handler)
    def invoke(event: dict, context: Any) -> Any:
        token = running_function.set(this_function)
        try:
            return handler(event, context)
        finally:
            running_function.reset(token)

    return invoke


def function_timeout(stack: Stack, logical_id: str) -> float:
    properties = stack.template["Resources"][logical_id]["Properties"]
    return float(properties.get("Timeout") or stack.template.get("Globals", {}).get("Function", {}).get("Timeout", 3))


def template_parameter(stack: Stack, name: str, fallback: Any = None) -> Any:
    """A template parameter's default value."""
    return stack.template.get("Parameters", {}).get(name, {}).get("Default", fallback)


@dataclass
class LambdaContext:
    """The Lambda context object, with a real countdown to the function's timeout."""

    function_name: str
    timeout_seconds: float
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping sends, from messages as ReceiveMessage returned them."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def eventbridge_event(
    detail_type: str, source: str, detail: Any, *, region: str, resources: list[str] | None = None
) -> dict[str, Any]:
    """An EventBridge event, as a rule or a schedule delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": resources or [],
        "detail": detail,
    }


def scheduled_event(region: str) -> dict[str, Any]:
    """The event an EventBridge schedule sends."""
    resources = [f"arn:aws:scheduler:{region}:123456789012:schedule/default/untag-poller"]
    return eventbridge_event("Scheduled Event", "aws.scheduler", {}, region=region, resources=resources)


class LocalPipeline:
    """Both functions wired to the stack's queue, table, topic and secret, with the event sources emulated."""

    def __init__(
        self,
        stack: Stack,
        *,
        environment: dict[str, str] | None = None,
        batch_size: int | None = None,
        redelivery_delay: int | None = None,
    ):
        self.stack = stack
        self.redelivery_delay = redelivery_delay
        self.region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        os.environ.update(stack.function_environment("PollerFunction"))
        os.environ.update(stack.function_environment("IntakeFunction"))
        os.environ.update(environment or {})
        self.intake = load_handler(stack, "IntakeFunction")
        self.poller = load_handler(stack, "PollerFunction")
        self.intake_timeout = function_timeout(stack, "IntakeFunction")
        self.poller_timeout = function_timeout(stack, "PollerFunction")
        self.batch_size = batch_size or int(template_parameter(stack, "IntakeBatchSize", 10))
        self.sqs = boto3.client("sqs")
        self.sns = boto3.client("sns")
        self.dynamodb = boto3.client("dynamodb")
        self.subscription_arn = ""
        self.results_queue_url = self._subscribe_results_queue()
        self.results: list[dict[str, Any]] = []
        self.intake_invocations = 0
        self.poller_invocations = 0
        self.retried_records = 0
        self.intake_errors: list[str] = []  # one formatted traceback per intake invocation that raised
        self.running = ""  # the invocation under way ("intake, 10 records", "poller"), for a progress display

    def _subscribe_results_queue(self) -> str:
        url = self.sqs.create_queue(QueueName=f"untag-results-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        allow_topic_delivery(self.sqs, url, arn, self.stack.topic_arn)  # moto does not check it; SQS does
        answer = self.sns.subscribe(
            TopicArn=self.stack.topic_arn, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True
        )
        self.subscription_arn = answer.get("SubscriptionArn", "")
        return url

    def close(self) -> None:
        """Unsubscribe and delete the results queue (it outlives the run on a real account otherwise)."""
        if self.subscription_arn:
            self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
            self.subscription_arn = ""
        if self.results_queue_url:
            self.sqs.delete_queue(QueueUrl=self.results_queue_url)
            self.results_queue_url = ""

    def submit(self, bodies: list[str]) -> list[str]:
        """Send request bodies to the intake queue, as a producer would; returns their message ids, in order."""
        return send_messages(self.sqs, self.stack.queue_url, bodies)

    def intake_once(self) -> int:
        """One event source mapping poll: receive up to a batch, invoke the intake, delete what succeeded."""
        messages = receive_batch(self.sqs, self.stack.queue_url, self.batch_size)
        if not messages:
            return 0
        event = sqs_event(messages, self.stack.queue_arn, self.region)
        self.intake_invocations += 1
        self.running = f"intake, {len(messages)} records"
        try:
            failed, error = invoke_intake(self.intake, event, LambdaContext("untag-intake", self.intake_timeout))
        finally:
            self.running = ""
        if error:
            self.intake_errors.append(error)
        self.retried_records += len(failed)
        delete_messages(self.sqs, self.stack.queue_url, [m for m in messages if m["MessageId"] not in failed])
        # What failed becomes visible again at once here (the deployed queue waits its visibility timeout).
        if failed:
            for message in messages:
                if message["MessageId"] in failed:
                    self._make_visible(message, self.redelivery_delay or 0)
        return len(messages)

    def _make_visible(self, message: dict[str, Any], after: int = 0) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.stack.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=after
            )
        except self.sqs.exceptions.ClientError:
            pass

    def poll_once(self) -> dict[str, Any]:
        self.poller_invocations += 1
        self.running = "poller"
        try:
            return self.poller(scheduled_event(self.region), LambdaContext("untag-poller", self.poller_timeout))
        finally:
            self.running = ""

    def collect_results(self) -> list[dict[str, Any]]:
        """Read result events from the subscribed queue (SNS envelopes unwrapped, attributes kept)."""
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.results_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = answer.get("Messages", [])
            if not messages:
                return self.results
            for message in messages:
                envelope = json.loads(message["Body"])
                event = json.loads(envelope["Message"])
                event["_attributes"] = {
                    name: value["Value"] for name, value in envelope.get("MessageAttributes", {}).items()
                }
                self.results.append(event)
            delete_messages(self.sqs, self.results_queue_url, messages)

    def queue_depth(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.stack.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def run_until_settled(
        self,
        expected_results: int,
        *,
        timeout: float = 120.0,
        poll_interval: float = 0.2,
        on_progress: Callable[[LocalPipeline], None] | None = None,
    ) -> bool:
        """Drive intake and poller until ``expected_results`` distinct requests have result events, or time out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.intake_once():
                if on_progress:
                    on_progress(self)
            self.poll_once()
            self.collect_results()
            if on_progress:
                on_progress(self)
            if len({event["request_id"] for event in self.results}) >= expected_results and not self.queue_depth():
                return True
            time.sleep(poll_interval)
        return False


def invoke_intake(handler: Callable[[dict, Any], Any], event: dict[str, Any], context: Any) -> tuple[set[str], str]:
    """Invoke the intake with an SQS batch, as the event source mapping does: (the message ids to redeliver,
    the traceback if the function raised). A function error redelivers the whole batch."""
    try:
        response = handler(event, context)
    except Exception:  # noqa: BLE001 - reported by the caller
        return {record["messageId"] for record in event["Records"]}, traceback.format_exc()
    return {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", ())}, ""


def send_messages(sqs: Any, queue_url: str, bodies: list[str]) -> list[str]:
    """Send bodies with SendMessageBatch, as a producer would; returns their message ids, in order."""
    message_ids: list[str] = []
    for batch in _send_batches(bodies):
        entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(batch)]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"could not queue messages: {answer['Failed']}")
        sent = {entry["Id"]: entry["MessageId"] for entry in answer.get("Successful", ())}
        message_ids.extend(sent[str(n)] for n in range(len(batch)))
    return message_ids


def delete_messages(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    """Delete received messages, 10 a DeleteMessageBatch."""
    for start in range(0, len(messages), 10):
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                for n, message in enumerate(messages[start : start + 10])
            ],
        )


def _send_batches(bodies: list[str]) -> list[list[str]]:
    """Bodies grouped for SendMessageBatch: at most 10 per call and 256 KiB in all (a bigger body goes alone)."""
    batches: list[list[str]] = []
    size = 0
    for body in bodies:
        length = len(body.encode())
        if not batches or len(batches[-1]) == 10 or size + length > SQS_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(body)
        size += length
    return batches


def receive_batch(sqs: Any, queue_url: str, wanted: int) -> list[dict[str, Any]]:
    """Up to ``wanted`` messages, 10 a ReceiveMessage, as the SQS event source mapping gathers a batch."""
    return receive_messages(sqs, queue_url, wanted, WaitTimeSeconds=0)
