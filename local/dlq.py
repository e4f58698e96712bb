"""Poison messages: list what the intake's dead-letter queue holds, and send it back to the intake queue.

    python -m local.dlq list    --stack cc-untag-dev          # or --dlq-url URL
    python -m local.dlq redrive --stack cc-untag-dev [--max N] # or --dlq-url URL --queue-url URL

A redriven message keeps the id it was first known by (message attribute ``request_id``),
so a request without its own ``request_id`` is still recognised and not created twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3

REQUEST_ID_ATTRIBUTE = "request_id"


def stack_queues(stack_name: str, cloudformation: Any = None) -> tuple[str, str]:
    """(intake queue URL, dead-letter queue URL) from a deployed stack's outputs."""
    cloudformation = cloudformation or boto3.client("cloudformation")
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except cloudformation.exceptions.ClientError as error:
        raise SystemExit(f"stack {stack_name!r} not found or not readable: {error.response['Error']['Message']}")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", ())}
    return outputs["IntakeQueueUrl"], outputs["DeadLetterQueueUrl"]


def peek(sqs: Any, dlq_url: str, limit: int = 10) -> list[dict[str, Any]]:
    """Read up to ``limit`` messages without removing them (they become visible again shortly)."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < limit:
        answer = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=min(10, limit - len(seen)),
                                     AttributeNames=["All"], MessageAttributeNames=["All"], VisibilityTimeout=5)
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            seen[message["MessageId"]] = message
    for message in seen.values():  # leave them where they were
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return list(seen.values())


def redrive(sqs: Any, dlq_url: str, queue_url: str, limit: int | None = None) -> int:
    """Move messages from the dead-letter queue back to the intake queue; returns how many moved."""
    moved = 0
    while limit is None or moved < limit:
        answer = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10 if limit is None else min(10, limit - moved),
                                     AttributeNames=["All"], MessageAttributeNames=["All"], VisibilityTimeout=60)
        messages = answer.get("Messages", [])
        if not messages:
            return moved
        entries = []
        for n, message in enumerate(messages):
            attributes = dict(message.get("MessageAttributes", {}))
            attributes.setdefault(REQUEST_ID_ATTRIBUTE, {"DataType": "String", "StringValue": message["MessageId"]})
            entries.append({"Id": str(n), "MessageBody": message["Body"], "MessageAttributes": attributes})
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        done = [messages[int(entry["Id"])] for entry in sent.get("Successful", ())]
        if done:
            sqs.delete_message_batch(QueueUrl=dlq_url, Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(done)])
        moved += len(done)
        if sent.get("Failed"):
            raise SystemExit(f"{len(sent['Failed'])} messages could not be sent back; they stay in the DLQ")
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.dlq", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["list", "redrive"])
    parser.add_argument("--stack", help="name of the deployed stack (reads its outputs)")
    parser.add_argument("--dlq-url", help="the dead-letter queue URL (instead of --stack)")
    parser.add_argument("--queue-url", help="the intake queue URL (instead of --stack)")
    parser.add_argument("--max", type=int, default=None, help="at most this many messages")
    args = parser.parse_args(argv)
    if args.stack:
        queue_url, dlq_url = stack_queues(args.stack)
    elif args.dlq_url:
        queue_url, dlq_url = args.queue_url, args.dlq_url
    else:
        parser.error("give --stack NAME, or --dlq-url (and --queue-url to redrive)")
    sqs = boto3.client("sqs")
    if args.action == "list":
        for message in peek(sqs, dlq_url, args.max or 10):
            print(json.dumps({"message_id": message["MessageId"],
                              "receive_count": message.get("Attributes", {}).get("ApproximateReceiveCount"),
                              "sent_at": message.get("Attributes", {}).get("SentTimestamp"),
                              "body": message["Body"]}, indent=2))
        return 0
    if not queue_url:
        parser.error("redrive needs --queue-url (or --stack)")
    print(f"moved {redrive(sqs, dlq_url, queue_url, args.max)} messages back to the intake queue")
    return 0


if __name__ == "__main__":
    sys.exit(main())
