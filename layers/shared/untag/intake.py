"""The intake: accept a batch of untag-request messages, losing none, then drive activity creation.

For each message: read it (a bad one is rejected with a result event, never retried), then
record the request with its plan in the table. Once recorded, the message is done: creating
its activities no longer depends on SQS (``untag.creation`` drives it, here with the time left
and on every poller run). A duplicate delivery finds its request recorded and does nothing; a
different request under a recorded ``request_id`` is rejected. Every message ends in exactly one
outcome; only a record that could not be stored is left for SQS to deliver again.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from untag.budget import TimeBudget
from untag.creation import affordable_calls, create_due, planned_chunks
from untag.observability import count, logger
from untag.ports import Ports
from untag.records import RequestRecord
from untag.redrive import REQUEST_ID_ATTRIBUTE
from untag.request import (
    REQUEST_ID_PATTERN,
    SOURCE_CAPS,
    Rejection,
    UntagRequest,
    can_share_activities,
    read_request,
)
from untag.resolution import resolve_due
from untag.result_event import rejected_event, rejection_key, utc_timestamp
from untag.settlement import publish


@dataclass(frozen=True)
class Message:
    """One SQS record, as the intake needs it."""

    message_id: str
    body: str
    sent_at: float = 0.0  # epoch seconds the message entered the intake queue
    fallback_id: str = ""  # the request id when the body has none (the first message id, kept across redrives)


def accept_batch(messages: list[Message], services: Ports, budget: TimeBudget) -> set[str]:
    """Process one SQS batch; return the ids of the messages to leave in the queue for another try.

    Three phases: read every message (pure), record each outcome (a rejection published, a request
    recorded), then drive creation with the time left. A failure touches only its own message.
    """
    services.begin(budget)
    failed: set[str] = set()
    outcomes = _read_all(messages, services)
    held = _record_all(outcomes, services, budget, failed)
    _drive(services, budget, held)
    return failed


def _read_all(messages: list[Message], services: Ports) -> list[tuple[Message, UntagRequest | Rejection]]:
    """Phase 1: each message read on its own (envelopes, variants, rules and caps)."""
    return [(message, _read(message, services.config.max_activities_per_request)) for message in messages]


def _record_all(
    outcomes: list[tuple[Message, UntagRequest | Rejection]], services: Ports, budget: TimeBudget, failed: set[str]
) -> list[RequestRecord]:
    """Phase 2: publish each rejection, record each request. Returns the requests this invocation holds:
    only as many as it can serve in its time budget; the others are due at once for any driver."""
    held: list[RequestRecord] = []
    calls = affordable_calls(services, budget)
    # A shareable request costs a share of a call only if others in the batch remove the same tags.
    sharing = Counter(
        tuple(sorted(outcome.tag_ids))
        for _, outcome in outcomes
        if isinstance(outcome, UntagRequest) and not outcome.needs_resolution and can_share_activities(outcome)
    )
    for message, outcome in outcomes:
        if budget.exhausted():  # not recorded: SQS delivers it again, to an invocation with time
            failed.add(message.message_id)
            continue
        try:
            if isinstance(outcome, Rejection):
                _reject(services, outcome, message)
                continue
            if outcome.needs_resolution:  # names to resolve first: on the resolution work list
                _accept(services, outcome, message, lease=None)
                continue
            cost = planned_chunks(outcome)
            if can_share_activities(outcome):
                cost = max(
                    len(outcome.source_ids) / SOURCE_CAPS["contact_ids"], 1 / sharing[tuple(sorted(outcome.tag_ids))]
                )
            record = _accept(services, outcome, message, lease=budget.lease_seconds() if calls >= cost else None)
            if record is not None:
                calls -= cost
                held.append(record)
        except Exception:  # noqa: BLE001 - only this message is retried; the batch goes on
            logger.exception(
                "could not record a message; SQS delivers it again", extra={"message_id": message.message_id}
            )
            count("MessagesRetried")
            failed.add(message.message_id)
    return held


def _drive(services: Ports, budget: TimeBudget, held: list[RequestRecord]) -> None:
    """Phase 3: create activities with the time left (the held requests first), resolve names, create the
    activities of what resolved. The messages are done."""
    try:
        create_due(services, budget, held)
        if resolve_due(services, budget).resolved:
            create_due(services, budget)
    except Exception:  # noqa: BLE001 - the requests are recorded; the next driver resumes them
        logger.exception("activity creation stopped by an error; the next run resumes it")


def _read(message: Message, max_activities: int) -> UntagRequest | Rejection:
    """Read a message; a body the reader cannot handle is rejected, never retried (it would fail again)."""
    try:
        return read_request(message.body, message.fallback_id or message.message_id, max_activities=max_activities)
    except Exception as error:  # noqa: BLE001 - a reader bug must not make a poison message
        logger.exception("the request reader failed on a message", extra={"message_id": message.message_id})
        body = message.body if isinstance(message.body, str) else repr(message.body)
        return Rejection(
            message.fallback_id or message.message_id, (f"body: could not be read ({type(error).__name__})",), body
        )


def _accept(services: Ports, request: UntagRequest, message: Message, *, lease: float | None) -> RequestRecord | None:
    """Record a valid request; the record when this invocation holds it to create its activities now."""
    store = services.store
    sent_at = message.sent_at or services.clock()
    received_at = utc_timestamp(sent_at)
    planned = 0 if request.needs_resolution else planned_chunks(request)  # (known once resolved)
    created, record = store.accept_request(
        request, received_at=received_at, planned=planned, lease_seconds=lease, received_epoch=sent_at
    )
    if created:
        count("RequestsReceived")
        return record if lease is not None else None
    if record.fingerprint == request.fingerprint:
        count("DuplicateRequests")
        logger.info(
            "duplicate delivery of an accepted request; nothing to do",
            extra={"request_id": request.request_id, "status": record.status.value},
        )
        return None
    count("RequestIdReused")
    logger.warning(
        "request_id already used for a different request; this message is rejected",
        extra={"request_id": request.request_id},
    )
    _reject(
        services,
        Rejection(
            request.request_id,
            (
                f"request_id: already used for a different request (received {record.received_at}); "
                "give this request a new request_id",
            ),
            message.body,
            tag_ids=request.tag_ids,
            source_type=request.source_type,
            metadata=request.metadata,
        ),
        message,
    )
    return None


def _reject(services: Ports, rejection: Rejection, message: Message) -> None:
    """Store and publish the rejected event (once per distinct bad body); nothing goes to Constant Contact."""
    count("RequestsRejected")
    logger.info("request rejected", extra={"request_id": rejection.request_id, "errors": list(rejection.errors)})
    received_at = utc_timestamp(message.sent_at or services.clock())
    event = rejected_event(rejection, received_at=received_at, finished_at=utc_timestamp(services.clock()))
    publication = services.store.put_rejection(rejection.request_id, rejection_key(rejection), event)
    if publication is not None:  # None: an earlier delivery already published it
        publish(services, [publication])


def message_from_record(record: dict[str, Any]) -> Message:
    """Read the parts of a Lambda SQS event record the intake needs."""
    attributes = record.get("attributes") or {}
    sent = attributes.get("SentTimestamp")
    redriven = ((record.get("messageAttributes") or {}).get(REQUEST_ID_ATTRIBUTE) or {}).get("stringValue")
    return Message(
        message_id=record["messageId"],
        body=record.get("body") or "",
        sent_at=int(sent) / 1000 if sent and str(sent).isdigit() else time.time(),
        fallback_id=redriven if isinstance(redriven, str) and REQUEST_ID_PATTERN.fullmatch(redriven) else "",
    )
