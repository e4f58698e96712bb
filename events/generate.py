"""Sample events for `sam local invoke` and tests, in the exact shapes AWS delivers them.

One file per entry point and envelope, each in the shape `sam local generate-event` produces
(`sqs receive-message`, `cloudwatch scheduled-event`):

- intake-sqs-batch.json          SQS batch: every source type, tolerated variants, a split request,
                                 an EventBridge and an SNS envelope, one invalid request
- intake-invalid.json            SQS batch of requests that break the contract (each is rejected)
- intake-eventbridge-envelope.json  SQS event whose one body is an EventBridge event (rule -> SQS target,
                                 no input transformer): `detail` is the request, `id` its request id
- intake-sns-envelope.json       SQS event whose one body is an SNS notification (SNS -> SQS, raw
                                 delivery off): `Message` is the request as a JSON string
- intake-redriven.json           SQS event of a message redriven from the dead-letter queue: message
                                 attribute `request_id` keeps the id it was first known by
- poller-scheduled.json          the poller's scheduled event

The committed JSON files are the product; this script only keeps them consistent:

    python events/generate.py          # write them
    python events/generate.py --check  # exit 1 if a committed file differs from what this script generates
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent
REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:untag-IntakeQueue"
SENT_AT_MS = 1795687200000  # 2026-11-26T10:00:00Z
NAMESPACE = uuid.UUID("5f1c7a52-6a7e-4f3b-9a34-0c0e6d7a2b10")  # stable ids: regenerating changes nothing


def _id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def sqs_record(name: str, body: str, index: int, message_attributes: dict[str, str] | None = None) -> dict[str, Any]:
    """One record as Lambda's SQS event source delivers it (body always a string)."""
    sent = SENT_AT_MS + index * 1000
    receipt = base64.b64encode(hashlib.sha256(f"receipt-{name}".encode()).digest() * 3).decode()
    record: dict[str, Any] = {
        "messageId": _id(f"message-{name}"),
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
        "id": _id(f"eventbridge-{name}"),
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
    subscription = _id(f"subscription-{name}")
    signature = base64.b64encode(hashlib.sha512(f"signature-{name}".encode()).digest() * 4).decode()
    return {
        "Type": "Notification",
        "MessageId": _id(f"sns-{name}"),
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


def valid_batch() -> dict[str, Any]:
    requests: list[tuple[str, str]] = [
        (
            "contact-ids",
            compact(
                {
                    "request_id": "crm-churn-2026-11-26-000123",
                    "source": {"contact_ids": ["c-1", "c-2"]},
                    "tag_ids": ["t-churn-risk"],
                    "metadata": {"origin": "crm", "anything": ["json", 1]},
                }
            ),
        ),
        (
            "list-ids",
            compact(
                {
                    "request_id": "crm-list-cleanup-2026-11-26.001",
                    "source": {"list_ids": ["l-newsletter", "l-promotions"]},
                    "exclude": {"contact_ids": ["c-9"]},
                    "tag_ids": ["t-black-friday", "t-cyber-monday"],
                }
            ),
        ),
        (
            "tag-ids",
            compact(
                {
                    "request_id": "crm:retag:2026-11-26:42",
                    "source": {"tag_ids": ["t-vip-2025"]},
                    "tag_ids": ["t-vip-2025"],
                }
            ),
        ),
        (
            "all-active-contacts",
            compact(
                {
                    "request_id": "ops-sweep-2026-11-26",
                    "source": {"all_active_contacts": True},
                    "exclude": {"contact_ids": ["c-keep-1", "c-keep-2"]},
                    "tag_ids": ["t-trial"],
                }
            ),
        ),
        (
            "new-subscriber",
            compact(
                {  # no request_id: the SQS messageId is the idempotency key
                    "source": {"new_subscriber": True},
                    "tag_ids": ["t-welcome-series"],
                }
            ),
        ),
        (
            "tolerated-variants",
            compact(
                {  # the forms Constant Contact's own documentation uses
                    "request_id": "crm-tolerated-2026-11-26-1",
                    "source": {"all_active_contacts": "true", "exclude": ["c-9"]},
                    "tag_ids": ["t-legacy"],
                }
            ),
        ),
        (
            "eventbridge",
            compact(
                eventbridge_envelope(
                    "eventbridge",
                    {  # no request_id: the event id is used
                        "source": {"contact_ids": ["c-100", "c-101"]},
                        "tag_ids": ["t-eventbridge"],
                        "metadata": {"origin": "eventbridge"},
                    },
                )
            ),
        ),
        (
            "sns",
            compact(
                sns_envelope(
                    "sns",
                    {
                        "request_id": "crm-sns-2026-11-26-7",
                        "source": {"list_ids": ["l-sns"]},
                        "tag_ids": ["t-sns"],
                    },
                )
            ),
        ),
        (
            "split",
            compact(
                {  # 1,200 contacts: more than one activity accepts (500), split by the service
                    "request_id": "crm-bulk-2026-11-26-1200",
                    "source": {"contact_ids": [f"c-{number:04d}" for number in range(1, 1201)]},
                    "tag_ids": ["t-bulk"],
                    "metadata": {"origin": "crm", "size": 1200},
                }
            ),
        ),
        (
            "invalid-two-sources",
            compact(
                {
                    "request_id": "crm-invalid-2026-11-26-1",
                    "source": {"contact_ids": ["c-1"], "list_ids": ["l-1"]},
                    "tag_ids": ["t-1"],
                }
            ),
        ),
    ]
    return sqs_event(requests)


def invalid_batch() -> dict[str, Any]:
    requests: list[tuple[str, str]] = [
        ("not-json", "remove tag t-1 from c-1 please"),
        ("missing-source", compact({"request_id": "bad-missing-source", "tag_ids": ["t-1"]})),
        (
            "two-sources",
            compact(
                {
                    "request_id": "bad-two-sources",
                    "source": {"contact_ids": ["c-1"], "all_active_contacts": True},
                    "tag_ids": ["t-1"],
                }
            ),
        ),
        (
            "empty-tag-ids",
            compact(
                {
                    "request_id": "bad-empty-tag-ids",
                    "source": {"contact_ids": ["c-1"]},
                    "tag_ids": [],
                }
            ),
        ),
        (
            "id-with-slash",
            compact(
                {
                    "request_id": "bad-id-with-slash",
                    "source": {"contact_ids": ["c-1", "../activities/c-2"]},
                    "tag_ids": ["t-1"],
                }
            ),
        ),
        (
            "exclude-with-contact-ids",
            compact(
                {
                    "request_id": "bad-exclude-with-contact-ids",
                    "source": {"contact_ids": ["c-1", "c-2"]},
                    "exclude": {"contact_ids": ["c-2"]},
                    "tag_ids": ["t-1"],
                }
            ),
        ),
        (
            "metadata-not-object",
            compact(
                {
                    "request_id": "bad-metadata-not-object",
                    "source": {"list_ids": ["l-1"]},
                    "tag_ids": ["t-1"],
                    "metadata": ["origin", "crm"],
                }
            ),
        ),
        (
            "request-id-too-long",
            compact(
                {
                    "request_id": "r" * 129,
                    "source": {"contact_ids": ["c-1"]},
                    "tag_ids": ["t-1"],
                }
            ),
        ),
        ("missing-tag-ids", compact({"request_id": "bad-missing-tag-ids", "source": {"list_ids": ["l-1"]}})),
        (
            "new-subscriber-false",
            compact(
                {
                    "request_id": "bad-new-subscriber-false",
                    "source": {"new_subscriber": False},
                    "tag_ids": ["t-1"],
                }
            ),
        ),
        ("body-not-object", compact(["c-1", "t-1"])),
    ]
    return sqs_event(requests)


def eventbridge_envelope_event() -> dict[str, Any]:
    """An EventBridge rule (no input transformer) delivering a CRM's request to the intake queue."""
    detail = {  # no request_id: the EventBridge event id is the idempotency key
        "source": {"list_ids": ["l-crm-churned"]},
        "exclude": {"contact_ids": ["c-vip-1"]},
        "tag_ids": ["t-churn-risk"],
        "metadata": {"origin": "crm", "rule": "churned-contacts"},
    }
    return sqs_event([("eventbridge-envelope", compact(eventbridge_envelope("eventbridge-envelope", detail)))])


def sns_envelope_event() -> dict[str, Any]:
    """An upstream SNS topic fanned in to the intake queue (subscription without raw delivery)."""
    message = {
        "request_id": "crm-sns-fan-in-2026-11-26-1",
        "source": {"contact_ids": ["c-200", "c-201", "c-202"]},
        "tag_ids": ["t-newsletter-2025"],
        "metadata": {"origin": "sns", "team": "data"},
    }
    return sqs_event([("sns-envelope", compact(sns_envelope("sns-envelope", message)))])


def redriven_event() -> dict[str, Any]:
    """A message moved back from the dead-letter queue (`untag dlq redrive`): its first id rides along."""
    body = compact({"source": {"contact_ids": ["c-300"]}, "tag_ids": ["t-redriven"]})  # no request_id
    return {"Records": [sqs_record("redriven", body, 0, {"request_id": _id("message-redriven-first-delivery")})]}


def poller_scheduled() -> dict[str, Any]:
    """A scheduled event (EventBridge "Scheduled Event" shape); the poller does not depend on its content."""
    return {
        "version": "0",
        "id": _id("poller-scheduled"),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": ACCOUNT,
        "time": "2026-11-26T10:01:00Z",
        "region": REGION,
        "resources": [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/cc-untag-dev-poll"],
        "detail": {},
    }


def samples() -> dict[str, str]:
    """Every sample file's name and its exact text."""
    events = {
        "intake-sqs-batch.json": valid_batch(),
        "intake-invalid.json": invalid_batch(),
        "intake-eventbridge-envelope.json": eventbridge_envelope_event(),
        "intake-sns-envelope.json": sns_envelope_event(),
        "intake-redriven.json": redriven_event(),
        "poller-scheduled.json": poller_scheduled(),
    }
    return {file_name: json.dumps(event, indent=2) + "\n" for file_name, event in events.items()}


def stale() -> list[str]:
    """The sample files that are missing or differ from what this script generates."""
    return [
        file_name
        for file_name, text in samples().items()
        if not (EVENTS_DIR / file_name).is_file() or (EVENTS_DIR / file_name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python events/generate.py", description="Write the sample events.")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed sample differs from what would be generated",
    )
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for file_name in outdated:
            print(f"events/{file_name} is out of date: run python events/generate.py", file=sys.stderr)
        if not outdated:
            print(f"{len(samples())} sample events up to date")
        return 1 if outdated else 0
    for file_name, text in samples().items():
        (EVENTS_DIR / file_name).write_text(text, encoding="utf-8")
        print(f"wrote events/{file_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
