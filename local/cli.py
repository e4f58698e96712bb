"""The operator CLI `untag`: send untag requests to a stack, follow them to their result, inspect its work list and DLQ.

    untag --stack cc-untag-dev submit --contacts c1,c2 --remove-tags t1   # prints the request_id
    untag --stack cc-untag-dev status REQUEST_ID [--wait]                # request, activities, % done, result
    untag --stack cc-untag-dev pending                                   # the work lists: creation, polling
    untag --stack cc-untag-dev ambiguous                                 # creates that got no clear answer
    untag --stack cc-untag-dev dlq list | dlq redrive [--max N]
    untag --stack cc-untag-dev results --follow [--state failed]         # tail result events

The stack is named by ``--stack NAME`` (its CloudFormation outputs are read) or ``--outputs FILE``
(a JSON of the outputs: an object, the ``[{"OutputKey", "OutputValue"}]`` list that
``sam list stack-outputs --output json`` prints, or ``aws cloudformation describe-stacks`` output).
``--endpoint-url`` (or ``AWS_ENDPOINT_URL``) points at a local AWS such as the runner's moto server.
Requests are validated here with the service's own code (``untag.request``) before they are sent;
the table is read with the service's own store (``untag.store``), never scanned.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "layers" / "shared") not in sys.path:  # the service's own domain package, as local/pipeline.py does
    sys.path.insert(0, str(ROOT / "layers" / "shared"))

from untag.activity import TERMINAL_STATES  # noqa: E402
from untag.request import Rejection, read_request  # noqa: E402
from untag.records import RequestRecord  # noqa: E402
from untag.store import ActivityStore  # noqa: E402

from local import dlq  # noqa: E402

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
OUTPUT_KEYS = ("IntakeQueueUrl", "ActivityTableName", "ResultTopicArn", "DeadLetterQueueUrl")
RESULT_STATES = (*TERMINAL_STATES, "rejected")
MESSAGE_ID_FALLBACK = "<the SQS messageId>"  # can never be a valid request_id: read_request only falls back to it

EPILOG = """\
The target options go before or after the command. --stack reads the outputs IntakeQueueUrl,
ActivityTableName, ResultTopicArn and DeadLetterQueueUrl (cloudformation:DescribeStacks); --outputs takes
them as JSON (e.g. `sam list stack-outputs --output json > outputs.json`). Environment: UNTAG_STACK or
UNTAG_OUTPUTS when neither is given; AWS_ENDPOINT_URL for a local AWS; the usual AWS credentials chain.

exit status: 0 done, 1 AWS or setup error (credentials, stack, permissions), 2 bad arguments or an invalid
request (nothing sent), 3 unknown request id (or, with --wait, not finished in time), 130 interrupted.
"""


class CliError(Exception):
    """A problem reported as one clear line, without a traceback."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- the stack


@dataclass
class Target:
    """The stack's resources (from its outputs) and the AWS clients to reach them."""

    outputs: dict[str, str]
    origin: str  # "stack NAME" or "outputs FILE", for error messages
    session: boto3.session.Session
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def output(self, key: str) -> str:
        value = self.outputs.get(key)
        if not isinstance(value, str) or not value:
            raise CliError(f"{self.origin} has no output {key} (expected: {', '.join(OUTPUT_KEYS)})")
        return value

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    @property
    def region(self) -> str | None:
        return self.session.region_name

    def store(self) -> ActivityStore:
        dynamodb = self.client("dynamodb")
        return ActivityStore(lambda: dynamodb, self.output("ActivityTableName"))


def resolve_target(args: argparse.Namespace) -> Target:
    stack_name, outputs_file = getattr(args, "stack", None), getattr(args, "outputs", None)
    if not stack_name and not outputs_file:  # the environment names the stack when the flags do not
        stack_name, outputs_file = os.environ.get("UNTAG_STACK"), os.environ.get("UNTAG_OUTPUTS")
    if stack_name and outputs_file:
        raise CliError("give --stack NAME or --outputs FILE, not both", EXIT_USAGE)
    if not stack_name and not outputs_file:
        raise CliError("which stack? give --stack NAME or --outputs FILE (or set UNTAG_STACK / UNTAG_OUTPUTS)",
                       EXIT_USAGE)
    endpoint_url = getattr(args, "endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL") or None
    region = getattr(args, "region", None)
    outputs: dict[str, str] = {}
    if outputs_file:
        outputs = read_outputs(outputs_file)
        endpoint_url = endpoint_url or outputs.get("EndpointUrl") or None
        region = region or _region_of(outputs)
    try:
        session = boto3.session.Session(profile_name=getattr(args, "profile", None), region_name=region)
    except BotoCoreError as error:  # ProfileNotFound
        raise CliError(str(error)) from None
    if not session.region_name:
        raise CliError("no AWS region: pass --region or set AWS_DEFAULT_REGION (or a region in your AWS profile)")
    if stack_name:
        target = Target({}, f"stack {stack_name!r}", session, endpoint_url)
        target.outputs = stack_outputs(target, stack_name)
        return target
    return Target(outputs, f"outputs file {outputs_file}", session, endpoint_url)


def read_outputs(path: str) -> dict[str, str]:
    """Stack outputs from JSON: an object, an [{OutputKey, OutputValue}] list, or describe-stacks output."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise CliError(f"cannot read the outputs file {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise CliError(f"the outputs file {path} is not valid JSON: {error}") from None
    if isinstance(document, dict) and isinstance(document.get("Stacks"), list) and document["Stacks"]:
        document = document["Stacks"][0]
    if isinstance(document, dict) and isinstance(document.get("Outputs"), list):
        document = document["Outputs"]
    if isinstance(document, list):
        document = {item.get("OutputKey"): item.get("OutputValue") for item in document if isinstance(item, dict)}
    if not isinstance(document, dict) or not any(key in document for key in OUTPUT_KEYS):
        raise CliError(f"the outputs file {path} holds no stack outputs (expected keys: {', '.join(OUTPUT_KEYS)})")
    return {key: value for key, value in document.items() if isinstance(key, str) and isinstance(value, str)}


def _region_of(outputs: dict[str, str]) -> str | None:
    """The region of the stack, read from an ARN among its outputs."""
    for key in ("ResultTopicArn", "IntakeQueueArn"):
        parts = outputs.get(key, "").split(":")
        if len(parts) > 4 and parts[0] == "arn" and parts[3]:
            return parts[3]
    return None


def stack_outputs(target: Target, stack_name: str) -> dict[str, str]:
    cloudformation = target.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if error.response.get("Error", {}).get("Code") == "ValidationError" and "does not exist" in message:
            raise CliError(f"stack {stack_name!r} not found in {target.region} (check the name, and --region or "
                           f"AWS_DEFAULT_REGION)") from None
        raise
    if not stacks:
        raise CliError(f"stack {stack_name!r} not found in {target.region}")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", ())}
    if not outputs:
        raise CliError(f"stack {stack_name!r} has no outputs (status {stacks[0].get('StackStatus')}): "
                       f"is it the untag service's stack, and did its deployment finish?")
    return outputs


# --------------------------------------------------------------------------- submit


def split_ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_request(args: argparse.Namespace) -> str:
    """The message body: the --file as it is, or a request built from the flags."""
    if args.file:
        flags = [name for name in ("remove_tags", "exclude", "request_id", "metadata") if getattr(args, name)]
        if flags:
            dropped = ", ".join("--" + flag.replace("_", "-") for flag in flags)
            raise CliError(f"--file already holds the whole request; drop {dropped}", EXIT_USAGE)
        try:
            return sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        except OSError as error:
            raise CliError(f"cannot read {args.file}: {error.strerror or error}", EXIT_USAGE) from None
    if not args.remove_tags:
        raise CliError("--remove-tags T1,T2 is required (the tags to remove)", EXIT_USAGE)
    if args.contacts:
        source: dict[str, Any] = {"contact_ids": split_ids(args.contacts)}
    elif args.lists:
        source = {"list_ids": split_ids(args.lists)}
    elif args.tags:
        source = {"tag_ids": split_ids(args.tags)}
    elif args.all_active:
        source = {"all_active_contacts": True}
    else:
        source = {"new_subscriber": True}
    request: dict[str, Any] = {}
    if args.request_id:
        request["request_id"] = args.request_id
    request["source"] = source
    if args.exclude:
        request["exclude"] = {"contact_ids": split_ids(args.exclude)}
    request["tag_ids"] = split_ids(args.remove_tags)
    if args.metadata:
        try:
            request["metadata"] = json.loads(args.metadata)
        except ValueError as error:
            raise CliError(f"--metadata is not valid JSON: {error}", EXIT_USAGE) from None
    return json.dumps(request, separators=(",", ":"))


def cmd_submit(args: argparse.Namespace) -> int:
    body = build_request(args)
    outcome = read_request(body, MESSAGE_ID_FALLBACK)
    if isinstance(outcome, Rejection):
        lines = "\n".join(f"  - {error}" for error in outcome.errors)
        raise CliError(f"the request is invalid, nothing was sent:\n{lines}", EXIT_USAGE)
    if args.dry_run:
        print(body)
        _note("valid; not sent (--dry-run)")
        return EXIT_OK
    target = resolve_target(args)
    queue_url = target.output("IntakeQueueUrl")
    message_id = target.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"]
    request_id = message_id if outcome.request_id == MESSAGE_ID_FALLBACK else outcome.request_id
    print(request_id)
    _note(f"sent to {queue_url} (message {message_id}); follow it: untag status {request_id} --wait")
    return EXIT_OK


# --------------------------------------------------------------------------- status


def request_report(target: Target, request_id: str) -> dict[str, Any]:
    """Everything the table knows of one request: the request, its activities, progress, result."""
    store = target.store()
    item = store.get_request(request_id)
    rejections = store.rejections(request_id)
    if item is None and not rejections:
        raise CliError(
            f"unknown request id {request_id!r}: not in table {target.output('ActivityTableName')} (a request just "
            f"sent may still wait in the intake queue's batching window; finished ones expire after RetentionDays)",
            EXIT_NOT_FOUND)
    report: dict[str, Any] = {"request_id": request_id}
    if item is not None:
        report.update(_accepted(store, item))
    if rejections:
        report["rejections"] = rejections
        if item is None:
            report.update(status="rejected", state="rejected", percent_done=100, event=rejections[-1])
    return report


def _accepted(store: ActivityStore, record: RequestRecord) -> dict[str, Any]:
    chunks = sorted(record.activities.items())
    known = store.get_activities({activity_id for _, activity_id in chunks})
    activities = []
    for index, activity_id in chunks:
        activity = known.get(activity_id)
        status = activity.status.as_event() if activity else {
            "activity_id": activity_id, "state": "unknown", "percent_done": 0, "items_total_count": None,
            "items_completed_count": None, "errors": [], "created_at": None, "completed_at": None}
        activities.append({"index": index, **status, "shared_with": [
            other for other in (activity.request_ids if activity else ()) if other != record.request_id]})
    creation_errors = record.creation_error_list()
    planned = record.planned or max(len(chunks), 1)
    event = json.loads(record.event) if record.event else None
    if event is not None:
        percent = 100
        creation_errors = creation_errors or [e for e in event.get("errors", ()) if "could not be created" in e]
    else:  # chunks not created yet count 0; a chunk Constant Contact refused is over
        done = sum(int(a["percent_done"] or 0) if a["state"] not in TERMINAL_STATES else 100 for a in activities)
        percent = int((done + 100 * len(creation_errors)) / planned)
    return {
        "status": record.status.value,
        "state": event["state"] if event else None,
        "percent_done": percent,
        "source_type": record.source_type,
        "tag_ids": list(record.tag_ids),
        "metadata": record.metadata,
        "received_at": record.received_at,
        "finished_at": record.finished_at,
        "planned_activities": planned,
        "activities": activities,
        "creation_errors": creation_errors,
        "event": event,
    }


def print_report(report: dict[str, Any]) -> None:
    lines = [f"request    {report['request_id']}"]
    if report.get("status") == "rejected":
        lines.append("state      rejected (never sent to Constant Contact)")
    elif report.get("state"):
        lines.append(f"state      {report['state']} (finished {report.get('finished_at')})")
    else:
        created = len(report["activities"]) + len(report["creation_errors"])
        lines.append(f"state      {report['status']} ({created} of {report['planned_activities']} activities "
                     f"created)")
    if report.get("status") != "rejected":
        lines += [f"received   {report.get('received_at')}",
                  f"removes    {', '.join(report.get('tag_ids') or ())} (source {report.get('source_type')})",
                  f"progress   {report['percent_done']}%"]
        if report.get("metadata") is not None:
            lines.append(f"metadata   {json.dumps(report['metadata'])}")
        if report["activities"]:
            lines.append("activities")
            for activity in report["activities"]:
                counts = ("" if activity["items_total_count"] is None
                          else f"  {activity['items_completed_count'] or 0}/{activity['items_total_count']} contacts")
                others = len(activity["shared_with"])
                shared = f"  shared with {others} other request(s)" if others else ""
                lines.append(f"  #{activity['index']:<3} {activity['activity_id']}  {activity['state']:<11} "
                             f"{activity['percent_done'] or 0:>3}%{counts}{shared}")
        for error in report["creation_errors"]:
            lines.append(f"  not created: {error}")
    for rejection in report.get("rejections", ()):
        lines.append(f"rejected   {rejection['finished_at']}:")
        lines += [f"  - {error}" for error in rejection["errors"]]
    if report.get("event"):
        lines += ["result event", json.dumps(report["event"], indent=2)]
    print("\n".join(lines))


def cmd_status(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    deadline = time.monotonic() + args.timeout
    last_progress = ""
    while True:
        try:
            report = request_report(target, args.request_id)
        except CliError as error:  # with --wait, a request still in the queue is not known yet
            if not (args.wait and error.code == EXIT_NOT_FOUND and time.monotonic() < deadline):
                raise
            report = None
        if report is not None and (report.get("event") or not args.wait):
            break
        progress = "not known yet" if report is None else f"{report['status']}, {report['percent_done']}% done"
        if args.wait and progress != last_progress:
            _note(f"{args.request_id}: {progress}")  # on stderr: stdout keeps only the final report
            last_progress = progress
        if time.monotonic() >= deadline:
            if report is not None:
                _print_status(report, args.json)
            raise CliError(f"request {args.request_id!r} not finished after {args.timeout:g} s", EXIT_NOT_FOUND)
        time.sleep(min(args.interval, max(deadline - time.monotonic(), 0.01)))
    _print_status(report, args.json)
    return EXIT_OK


def _print_status(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


# --------------------------------------------------------------------------- pending


def cmd_pending(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    store = target.store()
    activities = store.due_activities(limit=args.limit)
    unpublished = store.due_publications(limit=args.limit)
    waiting = store.due_creations(until=None, limit=args.limit)
    now = time.time()
    if args.json:
        print(json.dumps({
            "waiting_requests": [{"request_id": record.request_id, "received_at": record.received_at,
                                  "planned": record.planned, "created": len(record.activities)} for record in waiting],
            "activities": [{**{key: value for key, value in record.status.as_event().items() if key in (
                "activity_id", "state", "percent_done", "items_total_count", "items_completed_count")},
                "due_at": record.due_at, "deadline_at": record.deadline_at, "request_ids": list(record.request_ids)}
                for record in activities],
            "unpublished_events": [{"request_id": publication.request_id, "state": publication.state}
                                   for publication in unpublished],
        }, indent=2))
        return EXIT_OK
    if not activities and not unpublished and not waiting:
        print("nothing pending: the poller's work list is empty")
        return EXIT_OK
    if waiting:
        print(f"{len(waiting)} request(s) recorded, waiting for their activities to be created: "
              + ", ".join(f"{record.request_id} ({len(record.activities)} of {record.planned})" for record in waiting))
    if activities:
        print(f"{len(activities)} activit{'y' if len(activities) == 1 else 'ies'} on the poller's work list")
        print(f"{'ACTIVITY':<38} {'STATE':<11} {'DONE':>4}  {'NEXT LOOK':<14} {'DEADLINE':<16} REQUESTS")
        for record in activities:
            state = record.status.state
            next_look = "settling" if record.terminal else _relative((record.due_at or now) - now)
            deadline = _relative(record.deadline_at - now) if record.deadline_at else "-"
            print(f"{record.activity_id:<38} {state:<11} {record.status.percent_done or 0:>3}%  "
                  f"{next_look:<14} {deadline:<16} {', '.join(record.request_ids)}")
    if unpublished:
        print(f"{len(unpublished)} result event(s) stored, waiting to be published (the next poller run retries): "
              + ", ".join(publication.request_id for publication in unpublished))
    return EXIT_OK


def cmd_ambiguous(args: argparse.Namespace) -> int:
    """Creates that got no clear answer: each may have left an activity in Constant Contact nobody follows."""
    items = resolve_target(args).store().ambiguous_creates(limit=args.limit)
    if args.json:
        print(json.dumps([asdict(item) for item in items], indent=2))
        return EXIT_OK
    if not items:
        print("no ambiguous creates")
        return EXIT_OK
    print(f"{len(items)} create(s) got no clear answer (timeout, dropped connection or 5xx): Constant Contact may "
          "have created an activity that is not followed; check its activity list around that time")
    print(f"{'AT (UTC)':<20} {'REQUEST':<40} {'CHUNK':>5}  ERROR")
    for item in items:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item.at))
        print(f"{at:<20} {item.request_id:<40} {item.chunk + 1:>5}  {item.error}")
    return EXIT_OK


def _relative(seconds: float) -> str:
    amount = abs(seconds)
    text = f"{amount:.0f}s" if amount < 120 else f"{amount / 60:.0f}m" if amount < 7200 else f"{amount / 3600:.1f}h"
    return f"in {text}" if seconds >= 0 else f"{text} overdue"


# --------------------------------------------------------------------------- dlq


def cmd_dlq(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    sqs = target.client("sqs")
    dlq_url = target.output("DeadLetterQueueUrl")
    if args.action == "list":
        messages = dlq.peek(sqs, dlq_url, args.max or 10)
        for message in messages:
            print(json.dumps({"message_id": message["MessageId"],
                              "receive_count": message.get("Attributes", {}).get("ApproximateReceiveCount"),
                              "sent_at": message.get("Attributes", {}).get("SentTimestamp"),
                              "body": message["Body"]}, indent=2))
        _note(f"{len(messages)} message(s) in the dead-letter queue" + (" (first ones shown)" if len(messages) ==
                                                                        (args.max or 10) else ""))
        return EXIT_OK
    moved = dlq.redrive(sqs, dlq_url, target.output("IntakeQueueUrl"), args.max)
    print(f"moved {moved} message(s) back to the intake queue")
    return EXIT_OK


# --------------------------------------------------------------------------- results --follow


def states_filter(values: Sequence[str]) -> list[str]:
    states = [state for value in values for state in split_ids(value)]
    unknown = [state for state in states if state not in RESULT_STATES]
    if unknown:
        raise CliError(f"--state {', '.join(unknown)}: not a result state ({', '.join(RESULT_STATES)})", EXIT_USAGE)
    return list(dict.fromkeys(states))


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
            Attributes={"MessageRetentionPeriod": "3600", "SqsManagedSseEnabled": "true"})["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url,
                                                  AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": self.topic_arn}}}]}
        self.sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"Policy": json.dumps(policy)})
        attributes = {"RawMessageDelivery": "true"}
        if states:
            attributes["FilterPolicy"] = json.dumps({"state": states})
            attributes["FilterPolicyScope"] = "MessageAttributes"
        self.subscription_arn = self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn,
                                                   Attributes=attributes,
                                                   ReturnSubscriptionArn=True)["SubscriptionArn"]

    def receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=max(0, min(20, wait_seconds)))
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
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(messages)])
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
        raise CliError("results only follows live events: add --follow (one request's stored event: "
                       "untag status REQUEST_ID)", EXIT_USAGE)
    states = states_filter(args.state or ())
    target = resolve_target(args)
    subscription = ResultSubscription(target, states)
    restore = _terminate_as_interrupt()
    seen: set[str] = set()
    shown = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        _note(f"following result events of {subscription.topic_arn}"
              + (f" (state: {', '.join(states)})" if states else "") + "; Ctrl-C to stop")
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


# --------------------------------------------------------------------------- main


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("target")
    where.add_argument("--stack", default=argparse.SUPPRESS, metavar="NAME", help="deployed stack name")
    where.add_argument("--outputs", default=argparse.SUPPRESS, metavar="FILE", help="JSON of the stack's outputs")
    where.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: your AWS configuration)")
    where.add_argument("--profile", default=argparse.SUPPRESS, help="AWS profile")
    where.add_argument("--endpoint-url", default=argparse.SUPPRESS, metavar="URL",
                       help="a local AWS endpoint (moto server, LocalStack)")

    parser = argparse.ArgumentParser(prog="untag", parents=[common], description=__doc__.split("\n\n")[0],
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    submit = commands.add_parser("submit", parents=[common], help="validate and send an untag request; prints its id",
                                 description="Validate a request with the service's own rules, send it to the intake "
                                             "queue, print its request_id (the SQS messageId when it has none).")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--contacts", metavar="IDS", help="contact ids, comma-separated")
    source.add_argument("--lists", metavar="IDS", help="the contacts of these lists")
    source.add_argument("--tags", metavar="IDS", help="the contacts carrying these tags")
    source.add_argument("--all-active", action="store_true", help="every active contact")
    source.add_argument("--new-subscribers", action="store_true", help="new subscribers")
    source.add_argument("--file", metavar="FILE", help="the whole request body as JSON (bare or in an EventBridge/SNS "
                                                       "envelope); - reads stdin")
    submit.add_argument("--remove-tags", metavar="IDS", help="the tags to remove, comma-separated (required)")
    submit.add_argument("--exclude", metavar="IDS", help="contacts to leave alone (with --lists or --all-active)")
    submit.add_argument("--request-id", help="the idempotency key (default: the SQS messageId)")
    submit.add_argument("--metadata", metavar="JSON", help="a JSON object echoed back in the result event")
    submit.add_argument("--dry-run", action="store_true", help="validate and print the body; send nothing")
    submit.set_defaults(handler=cmd_submit)

    status = commands.add_parser("status", parents=[common], help="a request: activities, percent done, result",
                                 description="What the activity table knows of one request.")
    status.add_argument("request_id", metavar="REQUEST_ID")
    status.add_argument("--wait", action="store_true", help="poll until the request is finished")
    status.add_argument("--timeout", type=float, default=900.0, help="with --wait: give up after SECONDS (900)")
    status.add_argument("--interval", type=float, default=5.0, help="with --wait: seconds between reads (5)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)

    pending = commands.add_parser("pending", parents=[common], help="the activities the poller is waiting for",
                                  description="The poller's work list: activities not yet final (and final ones "
                                              "settling), and result events not yet published.")
    pending.add_argument("--limit", type=int, default=1000, help="at most this many items (1000)")
    pending.add_argument("--json", action="store_true", help="print JSON")
    pending.set_defaults(handler=cmd_pending)

    ambiguous = commands.add_parser("ambiguous", parents=[common],
                                    help="creates that got no clear answer (an activity may exist, unfollowed)",
                                    description=cmd_ambiguous.__doc__)
    ambiguous.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    ambiguous.add_argument("--json", action="store_true", help="print JSON")
    ambiguous.set_defaults(handler=cmd_ambiguous)

    dead = commands.add_parser("dlq", parents=[common], help="the intake dead-letter queue: list or redrive",
                               description="List the intake's dead-letter queue (messages stay there), or move its "
                                           "messages back to the intake queue (they keep the id first known).")
    dead.add_argument("action", choices=("list", "redrive"))
    dead.add_argument("--max", type=int, default=None, help="at most this many messages")
    dead.set_defaults(handler=cmd_dlq)

    results = commands.add_parser("results", parents=[common], help="tail result events (--follow)",
                                  description="Subscribe a temporary SQS queue to the result topic and print events "
                                              "as they come; the queue and subscription are removed on exit.")
    results.add_argument("--follow", "-f", action="store_true", help="follow live events (required)")
    results.add_argument("--state", action="append", metavar="STATES",
                         help=f"only these states (subscription filter policy): {', '.join(RESULT_STATES)}; "
                              f"repeat or comma-separate")
    results.add_argument("--request-id", help="only this request's events")
    results.add_argument("--max-events", type=int, default=None, help="stop after N events")
    results.add_argument("--timeout", type=float, default=None, help="stop after SECONDS")
    results.add_argument("--wait-seconds", type=int, default=20, help=argparse.SUPPRESS)  # long-poll length
    results.add_argument("--json", action="store_true", help="print each event as one JSON line")
    results.set_defaults(handler=cmd_results)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CliError as error:
        print(f"untag: error: {error}", file=sys.stderr)
        return error.code
    except (NoCredentialsError, PartialCredentialsError):
        print("untag: error: no AWS credentials found: set AWS_PROFILE (or pass --profile), run `aws configure` or "
              "`aws sso login`, or export AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY", file=sys.stderr)
        return EXIT_ERROR
    except NoRegionError:
        print("untag: error: no AWS region: pass --region or set AWS_DEFAULT_REGION", file=sys.stderr)
        return EXIT_ERROR
    except EndpointConnectionError as error:
        print(f"untag: error: cannot reach AWS at {error.kwargs.get('endpoint_url')} (network, region or "
              f"--endpoint-url?)", file=sys.stderr)
        return EXIT_ERROR
    except ClientError as error:
        print(f"untag: error: {_explain(error)}", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as exit_:  # local.dlq reports its failures this way
        if isinstance(exit_.code, str):
            print(f"untag: error: {exit_.code}", file=sys.stderr)
            return EXIT_ERROR
        raise
    except KeyboardInterrupt:
        print("untag: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _explain(error: ClientError) -> str:
    details = error.response.get("Error", {})
    code, message = details.get("Code", "?"), details.get("Message", "")
    operation = error.operation_name
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        return f"your AWS credentials have expired ({operation}): refresh them (e.g. `aws sso login`)"
    if code in ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"AWS does not accept these credentials ({code} on {operation})"
    if code in ("AccessDenied", "AccessDeniedException", "AuthorizationError"):
        return f"not allowed to {operation}: {message}"
    if code in ("ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                "NotFound"):
        return f"{operation}: the stack's resource does not exist ({message or code}); wrong outputs or region?"
    return f"{operation} failed: {code}: {message}"


if __name__ == "__main__":
    sys.exit(main())
