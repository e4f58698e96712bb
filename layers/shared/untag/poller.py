"""The poller: follow pending activities to their end, finish the requests they carry, resume creation.

One run: publish the result events still due; unless the daily quota is spent, read what
Constant Contact says of the activities on the work list (the ``GET /activities``
collection, 500 a page, when several are due; ``GET /activities/{id}`` for the rest),
store what changed, end activities past the deadline or unknown to Constant Contact as
``timed_out``, and finish every request whose activities are all final. Bounded by the
Lambda time budget and ``ceil(pending / 500) + 1`` GET calls; the rest waits for the next run.
With the time left, it creates the activities accepted requests still miss (``untag.creation``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from untag.activity import TERMINAL_STATES, ActivityStatus
from untag.budget import TimeBudget
from untag.constant_contact import ApiError, QuotaExceeded, next_utc_midnight
from untag.creation import create_due
from untag.observability import MetricUnit, count, logger, metrics
from untag.result_event import parse_utc, utc_timestamp
from untag.settlement import finish_if_done, publish

PAGE_SIZE = 500
RETENTION_SECONDS = 10 * 86400  # Constant Contact keeps activities 10 days; then GET answers 404
YOUNG_ACTIVITY_SECONDS = 60  # younger activities are read on every run; older ones back off
_UNKNOWN = object()  # Constant Contact answered 404 for this activity


@dataclass
class PollReport:
    pending_activities: int = 0
    api_gets: int = 0
    activities_updated: int = 0
    activities_ended: int = 0
    requests_waiting: int = 0
    events_published: int = 0
    activities_created: int = 0
    skipped: str = ""
    listed: bool = False  # a GET /activities page was read in this run: the API root answers


def poll(services: Any, budget: TimeBudget) -> PollReport:
    services.begin(budget)
    store = services.store
    report = PollReport()
    now = services.clock()
    due_events = store.due_publications(until=now)
    report.events_published = publish(services, due_events)

    if store.quota_blocked_until() > now:
        report.skipped = "daily quota spent"
        logger.warning("skipping this run: the daily quota is spent")
        return report

    work = store.due_activities()
    active = [item for item in work if item.get("state") not in TERMINAL_STATES]
    final = [item for item in work if item.get("state") in TERMINAL_STATES]
    report.pending_activities = len(active)
    metrics.add_metric(name="PendingActivities", unit=MetricUnit.Count, value=len(active))
    if active:
        oldest = max(_age(services.config, item, now) for item in active)
        metrics.add_metric(name="OldestPendingActivityAgeSeconds", unit=MetricUnit.Seconds, value=oldest)

    # An activity past the deadline is read once more: only a fresh "still unfinished" ends it.
    deadline_passed = {item["activity_id"] for item in active if item.get("deadline_at", math.inf) <= now}
    due = [item for item in active if item["due_at"] <= now or item["activity_id"] in deadline_passed]
    due_ids = {item["activity_id"] for item in due}
    seen = _read_statuses(services, due, active, budget, report)
    if _UNKNOWN in seen.values() and not report.listed and not _api_answers(services, report):
        seen = {key: value for key, value in seen.items() if value is not _UNKNOWN}  # no evidence: end nothing

    at = utc_timestamp(now)
    hours = services.config.activity_deadline_hours
    for item in active:
        previous = ActivityStatus.from_record(item)
        fresh = seen.get(item["activity_id"])
        if item["activity_id"] in deadline_passed and isinstance(fresh, ActivityStatus) and not fresh.terminal:
            status = fresh.ended("timed_out", f"not finished within the service's deadline of {hours:g} hours", at)
            count("ActivitiesTimedOutByService")
        elif fresh is _UNKNOWN:
            if not _gone(services, item, now, report):
                continue
            status = previous.ended("timed_out", "Constant Contact no longer knows this activity", at)
            count("ActivitiesTimedOutByService")
        elif item["activity_id"] in seen:
            status = seen[item["activity_id"]]
        else:
            continue
        next_poll_at = None if status.terminal else now + _interval(services.config, item, now)
        if status != previous or item.get("missing_since") is not None:
            if store.update_activity(status, previous_state=item["state"], next_poll_at=next_poll_at):
                report.activities_updated += 1
                if status.terminal:
                    report.activities_ended += 1
                    final.append({**item, **status.as_event()})
        elif next_poll_at is not None and item["activity_id"] in due_ids:
            store.postpone_activity(item["activity_id"], next_poll_at)

    report.requests_waiting = _settle(services, final, budget)
    if not report.skipped:  # then, with the time left, create what accepted requests still miss
        report.activities_created = create_due(services, budget).activities_created
    _report_waiting_requests(services, now)
    return report


def _report_waiting_requests(services: Any, now: float) -> None:
    """How long the longest-waiting recorded request has waited for its activities (RequestsWaitingAlarm)."""
    waiting = services.store.due_creations(until=None, limit=100)  # held ones included; the list's head
    received = [moment for moment in (parse_utc(item.get("received_at")) for item in waiting) if moment is not None]
    age = max(0.0, now - min(received)) if received else 0.0
    metrics.add_metric(name="OldestWaitingRequestAgeSeconds", unit=MetricUnit.Seconds, value=age)


def _read_statuses(services: Any, due: list[dict[str, Any]], active: list[dict[str, Any]], budget: TimeBudget,
                   report: PollReport) -> dict[str, Any]:
    """What Constant Contact says of the due activities (and of any other pending one it shows)."""
    client = services.constant_contact
    seen: dict[str, Any] = {}
    if not due:
        return seen
    allowance = math.ceil(len(active) / PAGE_SIZE) + 1
    wanted = {item["activity_id"] for item in active}
    try:
        if len(due) > 1:
            link = None
            while allowance > 0 and not budget.exhausted():
                page, link = client.list_activities(limit=PAGE_SIZE, next_link=link)
                allowance -= 1
                report.api_gets += 1
                report.listed = True
                seen.update({status.activity_id: status for status in page if status.activity_id in wanted})
                if wanted <= seen.keys() or not link:
                    break
                if allowance <= 1 and not all(item["activity_id"] in seen for item in due):
                    break  # keep the last call for an activity the pages did not show
        for item in due:
            if item["activity_id"] in seen:
                continue
            if allowance <= 0 or budget.exhausted():
                break
            status = client.get_activity(item["activity_id"])
            allowance -= 1
            report.api_gets += 1
            seen[item["activity_id"]] = _UNKNOWN if status is None else status
    except QuotaExceeded:
        services.store.block_quota_until(next_utc_midnight(services.clock()))
        report.skipped = "daily quota spent"
    except ApiError as error:
        if error.status == 404 and not report.listed:
            _misconfigured(report, error)
        else:
            logger.warning("could not read activity statuses; the next run tries again", extra={"error": str(error)})
    return seen


def _api_answers(services: Any, report: PollReport) -> bool:
    """Whether the configured API root answers at all: a 404 by id is evidence only if the collection is there."""
    try:
        services.constant_contact.list_activities(limit=1)
    except ApiError as error:
        report.api_gets += 1
        if error.status == 404:
            _misconfigured(report, error)
        return False
    report.api_gets += 1
    report.listed = True
    return True


def _misconfigured(report: PollReport, error: ApiError) -> None:
    """Every read answers 404: the API base URL is wrong. End nothing; say so loudly (alarm)."""
    report.skipped = "Constant Contact API root answers 404 (check CcApiBaseUrl)"
    count("ApiRootNotFound")
    logger.error("the Constant Contact API root answers 404: check CcApiBaseUrl; no activity is ended",
                 extra={"error": str(error)})


def _gone(services: Any, item: dict[str, Any], now: float, report: PollReport) -> bool:
    """Whether a 404 for an activity is evidence enough: older than Constant Contact keeps activities, or
    missing for the configured window while the API answers. Otherwise the first miss is noted."""
    if _age(services.config, item, now) > RETENTION_SECONDS:
        return True
    missing_since = services.store.note_missing(item["activity_id"], now,
                                                next_poll_at=now + _interval(services.config, item, now))
    missing_for = max(0.0, now - missing_since)  # (stored to the millisecond)
    if missing_for >= services.config.activity_missing_hours * 3600:
        return True
    count("ActivitiesMissing")
    logger.warning("Constant Contact does not know this activity yet; it is asked again",
                   extra={"activity_id": item["activity_id"], "missing_seconds": round(missing_for, 1)})
    return False


def _age(config: Any, item: dict[str, Any], now: float) -> float:
    return now - (item.get("deadline_at", now) - config.activity_deadline_hours * 3600)


def _interval(config: Any, item: dict[str, Any], now: float) -> float:
    """Poll activities of the last minute on every run, long-running ones less often (at most every 60 s)."""
    backoff = (_age(config, item, now) - YOUNG_ACTIVITY_SECONDS) / 4
    return min(config.max_poll_interval_seconds, max(config.first_poll_delay_seconds, backoff))


def _settle(services: Any, final: list[dict[str, Any]], budget: TimeBudget) -> int:
    """Finish the requests of final activities; take each activity off the list once its requests no longer need it."""
    if not final:
        return 0
    store = services.store
    request_ids = {request_id for item in final for request_id in item.get("request_ids", ())}
    records = store.get_requests(request_ids)
    known = {item["activity_id"]: item for item in final}
    waiting, deferred = finish_if_done(services, records.values(), known, budget)
    for item in final:
        carried = [records.get(request_id) for request_id in item.get("request_ids", ())]
        # A request still being created, or left for the next run, needs this activity back on the next run.
        if all(request is not None and request.get("status") != "creating" and request["request_id"] not in deferred
               for request in carried):
            store.settle_activity(item["activity_id"])
    return len(waiting) + len(deferred)
