"""Finishing requests: when every activity of a request is final, store its result event once, then publish it.

Shared by the intake (a request none of whose activities could be created) and the poller.
The event is stored with a conditional write before it is published, so overlapping runs
publish the same content, and an event SNS did not take stays due for the next run.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable

from untag.activity import TERMINAL_STATES, ActivityStatus
from untag.observability import MetricUnit, count, logger, metrics
from untag.result_event import finished_event, parse_utc, utc_timestamp


PUBLISH_CHUNK = 100


def activity_ids_of(request: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys((request.get("activities") or {}).values()))


def finish_if_done(services: Any, requests: Iterable[dict[str, Any]],
                   known: dict[str, dict[str, Any]] | None = None, budget: Any = None) -> tuple[set[str], set[str]]:
    """Finish every given pending request whose activities are all final.

    Returns (ids waiting for an activity, ids left for the next run because the time budget ran low).
    """
    store = services.store
    pending = [request for request in requests if request.get("status") == "pending"]
    known = dict(known or {})
    missing = {aid for request in pending for aid in activity_ids_of(request)} - known.keys()
    if missing:
        known.update(store.get_activities(missing))
    finished_items: list[dict[str, Any]] = []  # each holds the stored event to publish
    waiting: set[str] = set()
    deferred: set[str] = set()
    finished: Counter[str] = Counter()
    now = services.clock()
    for position, request in enumerate(pending):
        if budget is not None and budget.exhausted():
            deferred.update(request["request_id"] for request in pending[position:])
            break
        if len(finished_items) >= PUBLISH_CHUNK:
            publish(services, finished_items)
            finished_items = []
        records = [known.get(aid) for aid in activity_ids_of(request)]
        if any(record is None or record.get("state") not in TERMINAL_STATES for record in records):
            waiting.add(request["request_id"])
            continue
        event = finished_event(
            request_id=request["request_id"],
            tag_ids=request["tag_ids"],
            source_type=request["source_type"],
            metadata=json.loads(request["metadata"]) if request.get("metadata") else None,
            activities=[ActivityStatus.from_record(record) for record in records],
            creation_errors=[message for _, message in sorted((request.get("creation_errors") or {}).items(),
                                                               key=lambda entry: int(entry[0]))],
            received_at=request["received_at"],
            finished_at=utc_timestamp(now),
        )
        finished_item = store.finish_request(request["request_id"], event)
        if finished_item is not None:
            finished_items.append(finished_item)
            finished[f"Requests{event['state'].title().replace('_', '')}"] += 1
            _record_duration(request["received_at"], now)
            logger.info("request finished", extra={"request_id": event["request_id"], "state": event["state"]})
    publish(services, finished_items)
    for name, value in finished.items():
        count(name, value)
    return waiting, deferred


def _record_duration(received_at: str, now: float) -> None:
    """End-to-end duration of a request: from the intake queue to its result."""
    received = parse_utc(received_at)
    if received is None:
        return
    metrics.add_metric(name="RequestDurationSeconds", unit=MetricUnit.Seconds, value=max(0.0, now - received))


def publish(services: Any, items: list[dict[str, Any]]) -> int:
    """Publish the events stored in these items; take each one SNS accepted off the work list."""
    if not items:
        return 0
    accepted = services.publisher.publish([json.loads(item["event"]) for item in items])
    services.store.mark_published([item for item, ok in zip(items, accepted) if ok])
    published = sum(accepted)
    count("ResultEventsPublished", published)
    if published < len(items):
        count("ResultEventsPublishFailed", len(items) - published)
    return published
