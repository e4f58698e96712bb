"""Finishing requests: when every activity of a request is final, store its result event once, then publish it.

Shared by the intake (a request none of whose activities could be created) and the poller.
The event is stored with a conditional write before it is published, so overlapping runs
publish the same content, and an event SNS did not take stays due for the next run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from untag.budget import TimeBudget
from untag.observability import MetricUnit, count, logger, metrics
from untag.ports import Ports
from untag.records import ActivityRecord, Publication, RequestRecord, RequestStatus
from untag.result_event import finished_event, parse_utc, utc_timestamp

PUBLISH_CHUNK = 100


def finish_if_done(
    services: Ports,
    requests: Iterable[RequestRecord],
    known: dict[str, ActivityRecord] | None = None,
    budget: TimeBudget | None = None,
) -> tuple[set[str], set[str]]:
    """Finish every given pending request whose activities are all final.

    Returns (ids waiting for an activity, ids left for the next run because the time budget ran low).
    """
    store = services.store
    pending = [request for request in requests if request.status is RequestStatus.PENDING]
    known = dict(known or {})
    missing = {aid for request in pending for aid in request.activity_ids()} - known.keys()
    if missing:
        known.update(store.get_activities(missing))
    publications: list[Publication] = []
    waiting: set[str] = set()
    deferred: set[str] = set()
    finished: Counter[str] = Counter()
    now = services.clock()
    for position, request in enumerate(pending):
        if budget is not None and budget.exhausted():
            deferred.update(request.request_id for request in pending[position:])
            break
        if len(publications) >= PUBLISH_CHUNK:
            publish(services, publications)
            publications = []
        activities = [known.get(aid) for aid in request.activity_ids()]
        if any(activity is None or not activity.terminal for activity in activities):
            waiting.add(request.request_id)
            continue
        event = finished_event(
            request_id=request.request_id,
            tag_ids=request.tag_ids,
            source_type=request.source_type,
            metadata=request.metadata,
            activities=[activity.status for activity in activities],
            creation_errors=request.creation_error_list(),
            received_at=request.received_at,
            finished_at=utc_timestamp(now),
            resolution=request.resolution,
        )
        publication = store.finish_request(request.request_id, event)
        if publication is not None:
            publications.append(publication)
            finished[f"Requests{event['state'].title().replace('_', '')}"] += 1
            _record_duration(request.received_at, now)
            logger.info("request finished", extra={"request_id": request.request_id, "state": event["state"]})
    publish(services, publications)
    for name, value in finished.items():
        count(name, value)
    return waiting, deferred


def _record_duration(received_at: str, now: float) -> None:
    """End-to-end duration of a request: from the intake queue to its result."""
    received = parse_utc(received_at)
    if received is None:
        return
    metrics.add_metric(name="RequestDurationSeconds", unit=MetricUnit.Seconds, value=max(0.0, now - received))


def publish(services: Ports, publications: list[Publication]) -> int:
    """Publish these stored events, as stored; take each one SNS accepted off the work list."""
    if not publications:
        return 0
    accepted = services.publisher.publish(publications)
    services.store.mark_published([publication for publication, ok in zip(publications, accepted, strict=True) if ok])
    published = sum(accepted)
    count("ResultEventsPublished", published)
    if published < len(publications):
        count("ResultEventsPublishFailed", len(publications) - published)
    return published
