"""Finishing requests: when every activity of a request is final, store its result event once, then publish it.

Shared by the intake (a request none of whose activities could be created) and the poller.
The event is stored with a conditional write before it is published, so overlapping runs
publish the same content, and an event SNS did not take stays due for the next run.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable

from untag.activity import ActivityStatus
from untag.observability import MetricUnit, count, logger, metrics
from untag.result_event import finished_event, utc_timestamp


def activity_ids_of(request: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys((request.get("activities") or {}).values()))


PUBLISH_CHUNK = 100


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
    events, waiting, deferred = [], set(), set()
    finished: Counter[str] = Counter()
    now = services.clock()
    for position, request in enumerate(pending):
        if budget is not None and budget.exhausted():
            deferred.update(request["request_id"] for request in pending[position:])
            break
        if len(events) >= PUBLISH_CHUNK:
            _publish_finished(services, events)
            events = []
        records = [known.get(aid) for aid in activity_ids_of(request)]
        if any(record is None or record.get("state") not in ("completed", "failed", "cancelled", "timed_out")
               for record in records):
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
        if store.finish_request(request["request_id"], event):
            events.append(event)
            finished[f"Requests{event['state'].title().replace('_', '')}"] += 1
            _record_duration(request["received_at"], now)
            logger.info("request finished", extra={"request_id": event["request_id"], "state": event["state"]})
    _publish_finished(services, events)
    for name, value in finished.items():
        count(name, value)
    return waiting, deferred


def _publish_finished(services: Any, events: list[dict[str, Any]]) -> None:
    publish(services, [({"pk": f"REQUEST#{event['request_id']}", "sk": "REQUEST"}, event) for event in events])


def _record_duration(received_at: str, now: float) -> None:
    """End-to-end duration of a request: from the intake queue to its result."""
    try:
        received = datetime.strptime(received_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        return
    metrics.add_metric(name="RequestDurationSeconds", unit=MetricUnit.Seconds, value=max(0.0, now - received))


def publish(services: Any, due: list[tuple[dict[str, str], dict[str, Any]]]) -> int:
    """Publish stored events and take each one SNS accepted off the work list; returns how many."""
    if not due:
        return 0
    accepted = services.publisher.publish([event for _, event in due])
    for (key, _), ok in zip(due, accepted):
        if ok:
            services.store.mark_published(key)
    published = sum(accepted)
    count("ResultEventsPublished", published)
    if published < len(due):
        count("ResultEventsPublishFailed", len(due) - published)
    return published
