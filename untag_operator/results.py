"""`untag results --follow`: result events as they are published, through a temporary subscribed queue."""

from __future__ import annotations

import argparse
import json
import math
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from untag.activity import TERMINAL_STATES
from untag_operator.console import EXIT_OK, EXIT_USAGE, CliError, note
from untag_operator.submit import split_ids
from untag_operator.target import Target, resolve_target

RESULT_STATES = (*TERMINAL_STATES, "rejected")


def states_filter(values: Sequence[str]) -> list[str]:
    states = [state for value in values for state in split_ids(value)]
    unknown = [state for state in states if state not in RESULT_STATES]
    if unknown:
        raise CliError(f"--state {', '.join(unknown)}: not a result state ({', '.join(RESULT_STATES)})", EXIT_USAGE)
    return list(dict.fromkeys(states))


def allow_topic_delivery(sqs: Any, queue_url: str, queue_arn: str, topic_arn: str) -> None:
    """The queue policy a real SQS queue needs before SNS may deliver the topic's messages to it."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})


class ResultSubscription:
    """A temporary SQS queue subscribed to the result topic; ``close()`` removes both."""

    def __init__(self, target: Target, states: list[str]):
        self.sqs = target.client("sqs")
        self.sns = target.client("sns")
        self.topic_arn = target.output("ResultTopicArn")
        self.queue_url = ""
        self.subscription_arn = ""
        self.queue_url = self.sqs.create_queue(
            QueueName=f"untag-cli-results-{uuid.uuid4().hex[:12]}",
            Attributes={"MessageRetentionPeriod": "3600", "SqsManagedSseEnabled": "true"},
        )["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        allow_topic_delivery(self.sqs, self.queue_url, queue_arn, self.topic_arn)
        attributes = {"RawMessageDelivery": "true"}
        if states:
            attributes["FilterPolicy"] = json.dumps({"state": states})
            attributes["FilterPolicyScope"] = "MessageAttributes"
        self.subscription_arn = self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]

    def receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=max(0, min(20, wait_seconds))
        )
        messages = answer.get("Messages", [])
        events = []
        for message in messages:
            try:
                event = json.loads(message["Body"])
            except ValueError:
                event = {"unreadable_message": message["Body"]}
            if isinstance(event, dict) and event.get("Type") == "Notification" and "Message" in event:
                event = json.loads(event["Message"])  # a subscription without raw delivery
            events.append(event)
        if messages:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(messages)
                ],
            )
        return events

    def close(self) -> None:
        if self.subscription_arn:
            try:
                self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
            finally:
                self.subscription_arn = ""
        if self.queue_url:
            try:
                self.sqs.delete_queue(QueueUrl=self.queue_url)
            finally:
                self.queue_url = ""


def cmd_results(args: argparse.Namespace) -> int:
    if not args.follow:
        raise CliError(
            "results only follows live events: add --follow (one request's stored event: untag status REQUEST_ID)",
            EXIT_USAGE,
        )
    states = states_filter(args.state or ())
    target = resolve_target(args)
    subscription = ResultSubscription(target, states)
    restore = _terminate_as_interrupt()
    seen: set[str] = set()
    shown = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        note(
            f"following result events of {subscription.topic_arn}"
            + (f" (state: {', '.join(states)})" if states else "")
            + "; Ctrl-C to stop"
        )
        while args.max_events is None or shown < args.max_events:
            remaining = 20.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            # Long polls of whole seconds, at least one (a zero-second poll would spin until the deadline).
            for event in subscription.receive(max(1, math.ceil(min(remaining, args.wait_seconds)))):
                if event.get("event_id") in seen or (args.request_id and event.get("request_id") != args.request_id):
                    continue  # delivered twice (at least once delivery), or another request's
                seen.add(event.get("event_id"))
                print(json.dumps(event) if args.json else _summary(event), flush=True)
                shown += 1
                if args.max_events is not None and shown >= args.max_events:
                    break
    finally:
        subscription.close()
        restore()
    return EXIT_OK


def _summary(event: dict[str, Any]) -> str:
    activities = event.get("activities") or []
    detail = f"{len(activities)} activit{'y' if len(activities) == 1 else 'ies'}"
    if event.get("errors"):
        detail += f"; {len(event['errors'])} error(s): {event['errors'][0]}"
    return f"{event.get('finished_at')}  {event.get('state', '?'):<10} {event.get('request_id')}  {detail}"


def _terminate_as_interrupt() -> Callable[[], None]:
    """SIGTERM ends the follow like Ctrl-C, so the temporary queue and subscription are removed."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)
