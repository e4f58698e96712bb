"""`untag dlq`: list what the intake's dead-letter queue holds, and send it back to the intake queue.

A redriven message keeps the id it was first known by (the message attribute the layer names in
``untag.redrive``), so a request without its own ``request_id`` is still recognised and not created
twice. Messages go back in SendMessageBatch calls of at most 10 entries and 1 MiB; a message larger
than the intake queue accepts stays in the dead-letter queue, and the command says so.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from untag.redrive import REQUEST_ID_ATTRIBUTE
from untag_operator.console import EXIT_OK, CliError, note
from untag_operator.target import resolve_target

# SendMessageBatch: at most 10 entries, and "the maximum total payload size (the sum of the individual
# lengths of all of the batched messages)" is 1 MiB.
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html
SQS_BATCH_MAX_ENTRIES = 10
SQS_BATCH_MAX_BYTES = 1_048_576
# The intake queue's MaximumMessageSize in template.yaml, used when the queue's own cannot be read.
INTAKE_MAX_MESSAGE_BYTES = 262_144
RECEIVE_VISIBILITY_SECONDS = 60  # a message being moved is hidden this long from other readers


def receive_messages(sqs: Any, queue_url: str, wanted: int, **options: Any) -> list[dict[str, Any]]:
    """Up to ``wanted`` distinct messages with all their attributes, 10 a ReceiveMessage, until the queue gives
    none (a message received twice counts once, with its latest receipt handle). ``options``: ReceiveMessage's
    (``VisibilityTimeout``, ``WaitTimeSeconds``). Also the developer kit's event source mapping."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < wanted:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, wanted - len(seen)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            **options,
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            seen[message["MessageId"]] = message
    return list(seen.values())


def peek(sqs: Any, dlq_url: str, limit: int = 10) -> list[dict[str, Any]]:
    """Read up to ``limit`` messages without removing them (they become visible again at once)."""
    messages = receive_messages(sqs, dlq_url, limit, VisibilityTimeout=5)
    for message in messages:  # leave them where they were
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return messages


def message_bytes(body: str, attributes: dict[str, dict[str, Any]]) -> int:
    """What SQS counts against its size limits: the UTF-8 body plus each attribute's name, type and value."""
    size = len(body.encode("utf-8"))
    for name, attribute in attributes.items():
        size += len(name.encode("utf-8")) + len(str(attribute.get("DataType", "")).encode("utf-8"))
        if attribute.get("BinaryValue") is not None:
            size += len(attribute["BinaryValue"])
        else:
            size += len(str(attribute.get("StringValue", "")).encode("utf-8"))
    return size


@dataclass
class Redrive:
    """What a redrive did: how many messages went back, and which stayed in the dead-letter queue and why."""

    moved: int = 0
    left: dict[str, str] = field(default_factory=dict)  # message id -> why it is still in the DLQ


@dataclass
class _Entry:
    message: dict[str, Any]
    attributes: dict[str, dict[str, Any]]
    size: int


def redrive(sqs: Any, dlq_url: str, queue_url: str, limit: int | None = None) -> Redrive:
    """Move messages from the dead-letter queue back to the intake queue (at most ``limit``)."""
    result = Redrive()
    max_bytes = intake_max_message_bytes(sqs, queue_url)
    held: dict[str, str] = {}  # message id -> latest receipt handle of a message that stays
    try:
        while limit is None or result.moved < limit:
            wanted = SQS_BATCH_MAX_ENTRIES if limit is None else min(SQS_BATCH_MAX_ENTRIES, limit - result.moved)
            answer = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=wanted,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS,
            )
            messages = answer.get("Messages", [])
            for message in messages:
                if message["MessageId"] in held:
                    held[message["MessageId"]] = message["ReceiptHandle"]
            fresh = [message for message in messages if message["MessageId"] not in held]
            if not fresh:
                return result
            entries = []
            for message in fresh:
                attributes = dict(message.get("MessageAttributes", {}))
                attributes.setdefault(REQUEST_ID_ATTRIBUTE, {"DataType": "String", "StringValue": message["MessageId"]})
                size = message_bytes(message["Body"], attributes)
                if size > max_bytes:
                    result.left[message["MessageId"]] = (
                        f"{size:,} bytes, more than the intake queue takes (MaximumMessageSize {max_bytes:,})"
                    )
                    held[message["MessageId"]] = message["ReceiptHandle"]
                else:
                    entries.append(_Entry(message, attributes, size))
            for batch in send_batches(entries):
                _send(sqs, dlq_url, queue_url, batch, result, held)
    finally:
        for receipt_handle in held.values():  # what stays is visible again at once, for `untag dlq list`
            try:
                sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
            except ClientError:
                pass  # it becomes visible by itself after RECEIVE_VISIBILITY_SECONDS
    return result


def send_batches(entries: list[_Entry]) -> Iterator[list[_Entry]]:
    """Entries grouped for SendMessageBatch: at most 10 and 1 MiB each (every entry fits on its own)."""
    batch: list[_Entry] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) == SQS_BATCH_MAX_ENTRIES or size + entry.size > SQS_BATCH_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch


def _send(sqs: Any, dlq_url: str, queue_url: str, batch: list[_Entry], result: Redrive, held: dict[str, str]) -> None:
    """One SendMessageBatch; what it took is deleted from the dead-letter queue, what it refused stays."""
    sent = sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": str(n), "MessageBody": entry.message["Body"], "MessageAttributes": entry.attributes}
            for n, entry in enumerate(batch)
        ],
    )
    done = [batch[int(item["Id"])].message for item in sent.get("Successful", ())]
    if done:
        sqs.delete_message_batch(
            QueueUrl=dlq_url,
            Entries=[{"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(done)],
        )
    result.moved += len(done)
    for failure in sent.get("Failed", ()):
        message = batch[int(failure["Id"])].message
        result.left[message["MessageId"]] = f"refused: {failure.get('Code')}: {failure.get('Message', '')}".rstrip()
        held[message["MessageId"]] = message["ReceiptHandle"]


def intake_max_message_bytes(sqs: Any, queue_url: str) -> int:
    """The intake queue's MaximumMessageSize (the template's when it cannot be read)."""
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["MaximumMessageSize"])
        return int(attributes["Attributes"]["MaximumMessageSize"])
    except (ClientError, KeyError, ValueError):
        return INTAKE_MAX_MESSAGE_BYTES


def cmd_dlq(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    sqs = target.client("sqs")
    dlq_url = target.output("DeadLetterQueueUrl")
    if args.action == "list":
        messages = peek(sqs, dlq_url, args.max or 10)
        for message in messages:
            attributes = message.get("Attributes", {})
            print(
                json.dumps(
                    {
                        "message_id": message["MessageId"],
                        "receive_count": attributes.get("ApproximateReceiveCount"),
                        "sent_at": attributes.get("SentTimestamp"),
                        "body": message["Body"],
                    },
                    indent=2,
                )
            )
        shown = " (first ones shown)" if len(messages) == (args.max or 10) else ""
        note(f"{len(messages)} message(s) in the dead-letter queue{shown}")
        return EXIT_OK
    outcome = redrive(sqs, dlq_url, target.output("IntakeQueueUrl"), args.max)
    print(f"moved {outcome.moved} message(s) back to the intake queue")
    if outcome.left:
        reasons = "\n".join(f"  - {message_id}: {why}" for message_id, why in outcome.left.items())
        raise CliError(f"{len(outcome.left)} message(s) stay in the dead-letter queue:\n{reasons}")
    return EXIT_OK
