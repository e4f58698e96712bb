"""The intake: turn a batch of untag-request messages into Constant Contact activities, losing none.

For each message: read it (a bad one is rejected with a result event, never retried), claim
its request in the table (a duplicate delivery finds it claimed and does nothing), then
create the activities still missing, recording each activity id the moment Constant
Contact returns it. Small ``contact_ids`` requests removing the same tags share activities
(up to 500 contacts each). Returns the message ids to retry: transient failures, records
left when the Lambda time budget ran low, and everything while the daily quota is spent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from untag.budget import TimeBudget
from untag.constant_contact import (
    ApiError,
    AuthenticationError,
    PermanentApiError,
    QuotaExceeded,
    next_utc_midnight,
)
from untag.observability import count, logger
from untag.request import (
    REQUEST_ID_PATTERN,
    SOURCE_CAPS,
    Rejection,
    UntagRequest,
    can_share_activities,
    plan_activities,
    read_request,
)
from untag.result_event import rejected_event, rejection_key, utc_timestamp
from untag.settlement import finish_if_done, publish

MAX_VISIBILITY_SECONDS = 43_200  # SQS's cap on a message's visibility timeout


@dataclass(frozen=True)
class Message:
    """One SQS record, as the intake needs it."""

    message_id: str
    body: str
    receipt_handle: str = ""
    sent_at: float = 0.0  # epoch seconds the message entered the intake queue
    fallback_id: str = ""  # the request id when the body has none (the first message id, kept across redrives)


@dataclass
class _Work:
    """One activity to create and the (request, chunk index) pairs it carries."""

    body: dict[str, Any]
    carried: list[tuple[UntagRequest, int]] = field(default_factory=list)


class _StopBatch(Exception):
    """Stop starting API calls for this batch (time budget, quota, tokens)."""


def accept_batch(messages: list[Message], services: Any, budget: TimeBudget) -> set[str]:
    """Process one SQS batch; return the message ids to leave in the queue for another try."""
    store = services.store
    requests: dict[str, UntagRequest] = {}
    senders: dict[str, list[Message]] = {}
    failed: set[str] = set()
    for message in messages:
        outcome = read_request(message.body, message.fallback_id or message.message_id)
        if isinstance(outcome, Rejection):
            try:
                _reject(services, outcome, message)
            except Exception:  # noqa: BLE001 - storing the rejection failed: let SQS redeliver it
                logger.exception("could not record a rejection", extra={"request_id": outcome.request_id})
                failed.add(message.message_id)
            continue
        count("RequestsReceived")
        known = requests.setdefault(outcome.request_id, outcome)
        if known.fingerprint != outcome.fingerprint:
            count("RequestIdReused")
            logger.warning("request_id used twice in one batch for different requests; the later one is ignored",
                           extra={"request_id": outcome.request_id})
            continue
        senders.setdefault(outcome.request_id, []).append(message)
    if not requests:
        return failed

    missing, busy = _claim(services, requests, senders, budget)
    failed.update(message.message_id for request_id in busy for message in senders[request_id])
    to_create = [request_id for request_id, indexes in missing.items() if indexes]
    blocked_until = store.quota_blocked_until() if to_create else 0.0
    if blocked_until > services.clock():
        logger.warning("daily quota spent; leaving requests queued until it resets",
                       extra={"requests": len(to_create), "blocked_until": utc_timestamp(blocked_until)})
        return failed | _defer(services, [m for rid in to_create for m in senders[rid]], blocked_until)
    given_up: set[str] = set()
    deferred_until = 0.0
    without_activities: list[str] = []
    try:
        for unit in _plan_work(requests, missing):
            if budget.exhausted():
                raise _StopBatch("the Lambda time budget is running out")
            try:
                activity = services.constant_contact.create_tag_removal(unit.body)
            except PermanentApiError as error:
                logger.error("Constant Contact refused an activity", extra={
                    "request_ids": [request.request_id for request, _ in unit.carried], "error": str(error)})
                count("ActivitiesRefused")
                for request, index in unit.carried:
                    last = _done(missing, request.request_id, index)
                    store.record_creation_error(request.request_id, index,
                                                f"activity {index + 1} could not be created: {error}", last=last)
                    if last:
                        without_activities.append(request.request_id)
                continue
            except QuotaExceeded:
                deferred_until = next_utc_midnight(services.clock())
                store.block_quota_until(deferred_until)
                raise _StopBatch("the daily quota is spent") from None
            except AuthenticationError as error:
                count("AuthenticationFailed")
                raise _StopBatch(f"Constant Contact refused the tokens: {error}") from None
            except ApiError as error:
                logger.warning("activity not created; its requests will be retried", extra={
                    "request_ids": [request.request_id for request, _ in unit.carried], "error": str(error)})
                given_up.update(request.request_id for request, _ in unit.carried)
                continue
            count("ActivitiesCreated")
            carried = [(request.request_id, index, _done(missing, request.request_id, index))
                       for request, index in unit.carried]
            now = services.clock()
            store.record_activity(
                activity, carried,
                first_poll_at=now + services.config.first_poll_delay_seconds,
                deadline_at=now + services.config.activity_deadline_hours * 3600,
            )
            logger.info("activity created", extra={"activity_id": activity.activity_id,
                                                    "request_ids": [request_id for request_id, _, _ in carried]})
    except _StopBatch as stop:
        left = [request_id for request_id, indexes in missing.items() if indexes and request_id not in given_up]
        logger.warning("stopping the batch early", extra={"reason": str(stop), "requests_left": len(left)})
        left_messages = [message for request_id in left for message in senders[request_id]]
        if deferred_until:
            failed.update(_defer(services, left_messages, deferred_until))
        else:
            given_up.update(left)

    for request_id in given_up:
        store.release_claim(request_id)  # a retry may resume at once
        failed.update(message.message_id for message in senders[request_id])
    if without_activities:
        finish_if_done(services, store.get_requests(without_activities).values())
    return failed


def _claim(services: Any, requests: dict[str, UntagRequest], senders: dict[str, list[Message]],
           budget: TimeBudget) -> tuple[dict[str, set[int]], list[str]]:
    """Claim each request: (request_id -> chunk indexes still to create, request ids busy elsewhere)."""
    store = services.store
    missing: dict[str, set[int]] = {}
    busy: list[str] = []
    for request in requests.values():
        planned = 1 if can_share_activities(request) else len(plan_activities(request))
        received_at = utc_timestamp(min(message.sent_at for message in senders[request.request_id]))
        lease = budget.lease_seconds()
        existing = store.claim_request(request, received_at=received_at, planned=planned, lease_seconds=lease)
        if existing is None:
            missing[request.request_id] = set(range(planned))
            continue
        if existing.get("fingerprint") != request.fingerprint:
            count("RequestIdReused")
            logger.warning("request_id already used for a different request; this message is ignored",
                           extra={"request_id": request.request_id})
            continue  # the first request keeps its id; its own message resumes it if needed
        if existing.get("status") != "creating":
            count("DuplicateRequests")
            logger.info("duplicate delivery of an accepted request; nothing to do",
                        extra={"request_id": request.request_id, "status": existing.get("status")})
            continue
        if not store.take_over(request.request_id, lease_seconds=lease):
            logger.info("request is being created by another instance; retry later",
                        extra={"request_id": request.request_id})
            busy.append(request.request_id)
            continue
        done = {int(index) for index in existing.get("activities") or {}}
        done |= {int(index) for index in existing.get("creation_errors") or {}}
        missing[request.request_id] = set(range(int(existing.get("planned", 1)))) - done
        logger.info("resuming an interrupted request", extra={
            "request_id": request.request_id, "chunks_left": len(missing[request.request_id])})
    return missing, busy


def _plan_work(requests: dict[str, UntagRequest], missing: dict[str, set[int]]) -> list[_Work]:
    """Activities to create: shared ones for small same-tag contact requests, then each large request's chunks."""
    shared: dict[tuple[str, ...], list[_Work]] = {}
    alone: list[_Work] = []
    for request_id, indexes in missing.items():
        if not indexes:
            continue
        request = requests[request_id]
        if can_share_activities(request):
            groups = shared.setdefault(tuple(sorted(request.tag_ids)), [])
            _pack(groups, request)
            continue
        for plan in plan_activities(request):
            if plan.index in indexes:
                alone.append(_Work(plan.body, [(request, plan.index)]))
    return [work for groups in shared.values() for work in groups] + alone


def _pack(groups: list[_Work], request: UntagRequest) -> None:
    """Put a small request into the last shared activity if its contacts fit, else open a new one."""
    cap = SOURCE_CAPS["contact_ids"]
    if groups:
        current = groups[-1]
        contacts = current.body["source"]["contact_ids"]
        new = [contact for contact in request.source_ids if contact not in set(contacts)]
        if len(contacts) + len(new) <= cap:
            contacts.extend(new)
            current.carried.append((request, 0))
            return
    groups.append(_Work({"source": {"contact_ids": list(request.source_ids)}, "tag_ids": sorted(request.tag_ids)},
                        [(request, 0)]))


def _done(missing: dict[str, set[int]], request_id: str, index: int) -> bool:
    """Mark one chunk of a request done; True if it was the last one."""
    indexes = missing.get(request_id, set())
    indexes.discard(index)
    return not indexes


def _reject(services: Any, rejection: Rejection, message: Message) -> None:
    """Store and publish the rejected event (once per distinct bad body); nothing goes to Constant Contact."""
    count("RequestsRejected")
    logger.info("request rejected", extra={"request_id": rejection.request_id, "errors": list(rejection.errors)})
    received_at = utc_timestamp(message.sent_at or services.clock())
    event = rejected_event(rejection, received_at=received_at, finished_at=utc_timestamp(services.clock()))
    stored = services.store.put_rejection(rejection.request_id, rejection_key(rejection), event)
    if stored is not None:  # None: an earlier delivery already published it
        publish(services, [stored])


def _defer(services: Any, messages: Iterable[Message], until: float) -> set[str]:
    """Keep messages invisible until ``until`` (the quota's reset) and report them as not done."""
    messages = list(messages)
    seconds = int(min(max(until - services.clock(), 1), MAX_VISIBILITY_SECONDS))
    queue_url = services.config.intake_queue_url
    if queue_url:
        entries = [{"Id": str(n), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
                   for n, m in enumerate(messages) if m.receipt_handle]
        for start in range(0, len(entries), 10):
            try:
                services.aws("sqs").change_message_visibility_batch(QueueUrl=queue_url, Entries=entries[start:start + 10])
            except Exception as error:  # the messages still come back, just sooner
                logger.warning("could not extend message visibility", extra={"error": type(error).__name__})
    count("RequestsDeferredForQuota", len(messages))
    return {message.message_id for message in messages}


def message_from_record(record: dict[str, Any]) -> Message:
    """Read the parts of a Lambda SQS event record the intake needs."""
    attributes = record.get("attributes") or {}
    sent = attributes.get("SentTimestamp")
    redriven = ((record.get("messageAttributes") or {}).get("request_id") or {}).get("stringValue")
    return Message(
        message_id=record["messageId"],
        body=record.get("body") or "",
        receipt_handle=record.get("receiptHandle") or "",
        sent_at=int(sent) / 1000 if sent and str(sent).isdigit() else time.time(),
        fallback_id=redriven if isinstance(redriven, str) and REQUEST_ID_PATTERN.fullmatch(redriven) else "",
    )
