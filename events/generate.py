"""Sample events for `sam local invoke` and tests, in the exact shapes AWS delivers them.

One file per entry point and envelope, each in the shape `sam local generate-event` produces
(`sqs receive-message`, `cloudwatch scheduled-event`):

- intake-sqs-batch.json          SQS batch: every source type, tolerated variants, a split request,
                                 an EventBridge and an SNS envelope, one invalid request
- intake-names-and-emails.json   SQS batch in the CRM's words (contract section 4): tags by name,
                                 contacts by e-mail address, excluded addresses, previews (dry runs)
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
import json
import sys
from typing import Any

from envelopes import (
    ACCOUNT,
    EVENTS_DIR,
    REGION,
    compact,
    eventbridge_envelope,
    sns_envelope,
    sqs_event,
    sqs_record,
    stable_id,
)


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


def names_batch() -> dict[str, Any]:
    """Requests in the CRM's words (contract section 4); `make run` seeds the simulator's account to match."""
    requests = {
        "tag-names": {  # one name matches (ignoring case and spaces), one does not
            "request_id": "crm-names-2026-12-02-1",
            "source": {"contact_ids": ["c-1", "c-2"]},
            "tag_names": [" churned-2026", "No Such Tag"],
        },
        "emails": {  # addresses as a CRM exports them; one unknown to Constant Contact
            "request_id": "crm-2026-12-02-7",
            "source": {"emails": ["Ana@Example.com ", "bo@example.com", "nobody@example.com"]},
            "tag_names": ["churned-2026"],
            "tag_ids": ["t-churn-risk"],
            "metadata": {"origin": "reverse-etl"},
        },
        "exclude-emails": {
            "request_id": "crm-lists-2026-12-02-2",
            "source": {"list_ids": ["l-newsletter"]},
            "exclude": {"emails": ["ana@example.com"], "contact_ids": ["c-9"]},
            "tag_names": ["VIP"],
        },
        "preview": {  # a dry run: nothing is created, a previewed event says what would be
            "request_id": "crm-preview-2026-12-02-3",
            "source": {"list_ids": ["l-newsletter", "l-promotions"]},
            "tag_names": ["churned-2026", "vip"],
            "dry_run": True,
        },
        "preview-emails": {
            "request_id": "crm-preview-2026-12-02-4",
            "source": {"emails": ["ana@example.com", "carla@example.com", "ghost@example.com"]},
            "tag_ids": ["t-churn-risk"],
            "dry_run": True,
        },
        "nothing-resolves": {  # failed: no contact has this address
            "request_id": "crm-names-2026-12-02-5",
            "source": {"emails": ["ghost@example.com"]},
            "tag_ids": ["t-churn-risk"],
        },
    }
    return sqs_event([(name, compact(request)) for name, request in requests.items()])


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
        (
            "invalid-email",
            compact({"request_id": "bad-invalid-email", "source": {"emails": ["ana@example"]}, "tag_ids": ["t-1"]}),
        ),
        (
            "dry-run-not-boolean",
            compact(
                {"request_id": "bad-dry-run", "source": {"list_ids": ["l-1"]}, "tag_names": ["vip"], "dry_run": "yes"}
            ),
        ),
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
    return {"Records": [sqs_record("redriven", body, 0, {"request_id": stable_id("message-redriven-first-delivery")})]}


def poller_scheduled() -> dict[str, Any]:
    """A scheduled event (EventBridge "Scheduled Event" shape); the poller does not depend on its content."""
    return {
        "version": "0",
        "id": stable_id("poller-scheduled"),
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
        "intake-names-and-emails.json": names_batch(),
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
