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

from untag.activity import ActivityStatus
from untag.budget import TimeBudget
from untag.config import Config
from untag.constant_contact import ApiError, QuotaExceeded
from untag.creation import create_due
from untag.directory_sync import keep_directory_current
from untag.observability import MetricUnit, count, logger, metrics
from untag.ports import Ports
from untag.records import ActivityRecord, RequestStatus
from untag.resolution import resolve_due
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
    requests_resolved: int = 0
    skipped: str = ""
    listed: bool = False  # a GET /activities page was read in this run: the API root answers


def poll(services: Ports, budget: TimeBudget) -> PollReport:
    services.begin(budget)
    store = services.store
    report = PollReport()
    now = services.clock()
    report.events_published = publish(services, store.due_publications(until=now))

    if services.controls.quota_spent():
        report.skipped = "daily quota spent"
        logger.warning("skipping this run: the daily quota is spent")
        return report

    work = store.due_activities()
    active = [record for record in work if not record.terminal]
    final = [record for record in work if record.terminal]
    report.pending_activities = len(active)
    metrics.add_metric(name="PendingActivities", unit=MetricUnit.Count, value=len(active))
    if active:
        oldest = max(_age(services.config, record, now) for record in active)
        metrics.add_metric(name="OldestPendingActivityAgeSeconds", unit=MetricUnit.Seconds, value=oldest)

    # An activity past the deadline is read once more: only a fresh "still unfinished" ends it.
    deadline_passed = {record.activity_id for record in active if record.deadline_at <= now}
    due = [record for record in active if (record.due_at or 0) <= now or record.activity_id in deadline_passed]
    due_ids = {record.activity_id for record in due}
    seen = _read_statuses(services, due, active, budget, report)
    if _UNKNOWN in seen.values() and not report.listed and not _api_answers(services, report):
        seen = {key: value for key, value in seen.items() if value is not _UNKNOWN}  # no evidence: end nothing

    at = utc_timestamp(now)
    hours = services.config.activity_deadline_hours
    for record in active:
        previous = record.status
        fresh = seen.get(record.activity_id)
        if record.activity_id in deadline_passed and isinstance(fresh, ActivityStatus) and not fresh.terminal:
            status = fresh.ended("timed_out", f"not finished within the service's deadline of {hours:g} hours", at)
            count("ActivitiesTimedOutByService")
        elif fresh is _UNKNOWN:
            if not _gone(services, record, now):
                continue
            status = previous.ended("timed_out", "Constant Contact no longer knows this activity", at)
            count("ActivitiesTimedOutByService")
        elif isinstance(fresh, ActivityStatus):
            status = fresh
        else:
            continue
        next_poll_at = None if status.terminal else now + _interval(services.config, record, now)
        if status != previous or record.missing_since is not None:
            if store.update_activity(status, previous_state=previous.state, next_poll_at=next_poll_at):
                report.activities_updated += 1
                if status.terminal:
                    report.activities_ended += 1
                    final.append(record.with_status(status))
        elif next_poll_at is not None and record.activity_id in due_ids:
            store.postpone_activity(record.activity_id, next_poll_at)

    report.requests_waiting = _settle(services, final, budget)
    if not report.skipped:  # then, with the time left: keep the directory current, resolve names, create
        keep_directory_current(services, budget)
        report.requests_resolved = resolve_due(services, budget).resolved
        report.activities_created = create_due(services, budget).activities_created
    _report_waiting_requests(services, now)
    return report


def _report_waiting_requests(services: Ports, now: float) -> None:
    """How long the longest-waiting recorded request has waited for its activities (RequestsWaitingAlarm)."""
    waiting = services.store.due_creations(until=None, limit=100)  # held ones included; the list's head
    waiting += services.store.due_resolutions(until=None, limit=100)
    received = [moment for moment in (parse_utc(record.received_at) for record in waiting) if moment is not None]
    age = max(0.0, now - min(received)) if received else 0.0
    metrics.add_metric(name="OldestWaitingRequestAgeSeconds", unit=MetricUnit.Seconds, value=age)


def _read_statuses(
    services: Ports, due: list[ActivityRecord], active: list[ActivityRecord], budget: TimeBudget, report: PollReport
) -> dict[str, ActivityStatus | object]:
    """What Constant Contact says of the due activities (and of any other pending one it shows)."""
    client = services.constant_contact
    seen: dict[str, ActivityStatus | object] = {}
    if not due:
        return seen
    allowance = math.ceil(len(active) / PAGE_SIZE) + 1
    wanted = {record.activity_id for record in active}
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
                if allowance <= 1 and not all(record.activity_id in seen for record in due):
                    break  # keep the last call for an activity the pages did not show
        for record in due:
            if record.activity_id in seen:
                continue
            if allowance <= 0 or budget.exhausted():
                break
            status = client.get_activity(record.activity_id)
            allowance -= 1
            report.api_gets += 1
            seen[record.activity_id] = _UNKNOWN if status is None else status
    except QuotaExceeded:
        services.controls.quota_exceeded()
        report.skipped = "daily quota spent"
    except ApiError as error:
        if error.status == 404 and not report.listed:
            _misconfigured(report, error)
        else:
            logger.warning("could not read activity statuses; the next run tries again", extra={"error": str(error)})
    return seen


def _api_answers(services: Ports, report: PollReport) -> bool:
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
    logger.error(
        "the Constant Contact API root answers 404: check CcApiBaseUrl; no activity is ended",
        extra={"error": str(error)},
    )


def _gone(services: Ports, record: ActivityRecord, now: float) -> bool:
    """Whether a 404 for an activity is evidence enough: older than Constant Contact keeps activities, or
    missing for the configured window while the API answers. Otherwise the first miss is noted."""
    if _age(services.config, record, now) > RETENTION_SECONDS:
        return True
    missing_since = services.store.note_missing(
        record.activity_id, now, next_poll_at=now + _interval(services.config, record, now)
    )
    missing_for = max(0.0, now - missing_since)  # (stored to the millisecond)
    if missing_for >= services.config.activity_missing_hours * 3600:
        return True
    count("ActivitiesMissing")
    logger.warning(
        "Constant Contact does not know this activity yet; it is asked again",
        extra={"activity_id": record.activity_id, "missing_seconds": round(missing_for, 1)},
    )
    return False


def _age(config: Config, record: ActivityRecord, now: float) -> float:
    """Seconds since the activity was created (its deadline is set at creation)."""
    return now - (record.deadline_at - config.activity_deadline_hours * 3600)


def _interval(config: Config, record: ActivityRecord, now: float) -> float:
    """Poll activities of the last minute on every run, long-running ones less often (at most every 60 s)."""
    backoff = (_age(config, record, now) - YOUNG_ACTIVITY_SECONDS) / 4
    return min(config.max_poll_interval_seconds, max(config.first_poll_delay_seconds, backoff))


def _settle(services: Ports, final: list[ActivityRecord], budget: TimeBudget) -> int:
    """Finish the requests of final activities; take each activity off the list once its requests no longer need it."""
    if not final:
        return 0
    store = services.store
    records = store.get_requests({request_id for activity in final for request_id in activity.request_ids})
    known = {activity.activity_id: activity for activity in final}
    waiting, deferred = finish_if_done(services, records.values(), known, budget)
    for activity in final:
        carried = [records.get(request_id) for request_id in activity.request_ids]
        # A request still being created, or left for the next run, needs this activity back on the next run.
        if all(
            request is not None and request.status is not RequestStatus.CREATING and request.request_id not in deferred
            for request in carried
        ):
            store.settle_activity(activity.activity_id)
    return len(waiting) + len(deferred)
