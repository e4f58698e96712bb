"""Envelopes for the sample events: SQS records as Lambda delivers them, EventBridge events, SNS notifications.

Used by events/generate.py; the ids are stable (UUIDv5), so regenerating changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent
REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:untag-IntakeQueue"
SENT_AT_MS = 1795687200000  # 2026-11-26T10:00:00Z
NAMESPACE = uuid.UUID("5f1c7a52-6a7e-4f3b-9a34-0c0e6d7a2b10")  # stable ids: regenerating changes nothing


def stable_id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def sqs_record(name: str, body: str, index: int, message_attributes: dict[str, str] | None = None) -> dict[str, Any]:
    """One record as Lambda's SQS event source delivers it (body always a string)."""
    sent = SENT_AT_MS + index * 1000
    receipt = base64.b64encode(hashlib.sha256(f"receipt-{name}".encode()).digest() * 3).decode()
    record: dict[str, Any] = {
        "messageId": stable_id(f"message-{name}"),
        "receiptHandle": f"AQEB{receipt}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": str(sent + 12),
        },
        "messageAttributes": {
            key: {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String"}
            for key, value in (message_attributes or {}).items()
        },
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),  # as SQS computes it
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }
    if message_attributes:  # Lambda adds the digest only when the message has attributes
        record = {
            **dict(list(record.items())[:6]),
            "md5OfMessageAttributes": _attributes_md5(message_attributes),
            **dict(list(record.items())[6:]),
        }
    return record


def _attributes_md5(attributes: dict[str, str]) -> str:
    """SQS's MD5 of String message attributes: length-prefixed name, type, transport byte 1, value."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        for part in (name.encode(), b"String"):
            digest.update(len(part).to_bytes(4, "big") + part)
        value = attributes[name].encode()
        digest.update(b"\x01" + len(value).to_bytes(4, "big") + value)
    return digest.hexdigest()


def sqs_event(bodies: list[tuple[str, str]]) -> dict[str, Any]:
    return {"Records": [sqs_record(name, body, index) for index, (name, body) in enumerate(bodies)]}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def eventbridge_envelope(name: str, detail: dict[str, Any]) -> dict[str, Any]:
    """An EventBridge event as a rule delivers it to an SQS target."""
    return {
        "version": "0",
        "id": stable_id(f"eventbridge-{name}"),
        "detail-type": "Untag Requested",
        "source": "crm.example",
        "account": ACCOUNT,
        "time": "2026-11-26T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def sns_envelope(name: str, message: dict[str, Any]) -> dict[str, Any]:
    """An SNS notification as an SNS -> SQS subscription without raw delivery delivers it."""
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:crm-untag-requests"
    subscription = stable_id(f"subscription-{name}")
    signature = base64.b64encode(hashlib.sha512(f"signature-{name}".encode()).digest() * 4).decode()
    return {
        "Type": "Notification",
        "MessageId": stable_id(f"sns-{name}"),
        "TopicArn": topic_arn,
        "Message": compact(message),
        "Timestamp": "2026-11-26T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": signature,
        "SigningCertURL": (
            f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
        ),
        "UnsubscribeURL": (
            f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:{subscription}"
        ),
    }
