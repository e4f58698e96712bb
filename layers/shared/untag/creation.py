"""Creating activities: the accepted requests on the creation work list become Constant Contact activities.

Driven by both functions: the intake after it has recorded a batch, the poller on every run, so
that creation goes on at the rate limit whether or not messages arrive, and never depends on SQS
receive counts. An invocation holds (leases) only the requests it can serve in its time budget,
creates their missing chunks, records each activity id the moment Constant Contact returns it,
and lets go of what it did not finish: it is due again at once for the next driver. Small
``contact_ids`` requests removing the same tags share activities (up to 500 contacts each).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from untag.budget import TimeBudget
from untag.constant_contact import ApiError, AuthenticationError, PermanentApiError, QuotaExceeded
from untag.observability import count, logger
from untag.ports import Ports
from untag.records import RequestRecord
from untag.request import SOURCE_CAPS, UntagRequest, can_share_activities, plan_activities
from untag.settlement import finish_if_done

PAGE = 100  # requests read from the creation work list at a time
ERROR_TEXT_MAX = 200  # a chunk's creation error kept in the request record (bounded: the record is one item)
MAX_AMBIGUOUS_CREATES = 2  # a chunk whose creates twice got no clear answer is not tried a third time


@dataclass
class CreationReport:
    activities_created: int = 0
    activities_refused: int = 0
    requests_held: int = 0
    stopped: str = ""


@dataclass
class _Work:
    """One activity to create and the (request, chunk index) pairs it carries."""

    body: dict[str, Any]
    carried: list[tuple[UntagRequest, int]] = field(default_factory=list)


class _Stop(Exception):
    """Stop starting API calls (time budget, quota, tokens)."""


def planned_chunks(request: UntagRequest) -> int:
    return 1 if can_share_activities(request) else len(plan_activities(request))


def affordable_calls(services: Ports, budget: TimeBudget) -> float:
    """How many Constant Contact calls this invocation can still make: its time left at the shared rate."""
    left = budget.remaining() - budget.reserve
    return math.inf if math.isinf(left) else max(0.0, left * services.config.requests_per_second)


def create_due(services: Ports, budget: TimeBudget, held: list[RequestRecord] | None = None) -> CreationReport:
    """Create the missing activities of the requests ``held`` (already leased by the caller), then of the
    requests due on the work list, while the time budget, the quota and the tokens allow."""
    report = CreationReport()
    held = list(held or ())
    if services.controls.quota_spent():
        report.stopped = "daily quota spent"
        _let_go(services, held, services.clock())
        return report
    seen: set[str] = set()
    try:
        while True:
            if budget.exhausted():
                raise _Stop("the Lambda time budget is running out")
            records = held or _hold_due(services, budget, seen)
            held = []
            if not records:
                return report
            report.requests_held += len(records)
            seen.update(record.request_id for record in records)
            _create(services, budget, records, report)
    except _Stop as stop:
        report.stopped = str(stop)
        logger.info("creation stopped for this invocation", extra={"reason": report.stopped})
        return report


def _hold_due(services: Ports, budget: TimeBudget, seen: set[str]) -> list[RequestRecord]:
    """Lease the due requests this invocation can serve in its remaining time (by planned calls)."""
    store = services.store
    calls = affordable_calls(services, budget)
    due = store.due_creations(until=services.clock(), limit=PAGE)
    records: list[RequestRecord] = []
    cost = 0.0
    lease = budget.lease_seconds()
    sharing = Counter(tuple(sorted(candidate.tag_ids)) for candidate in due if can_share_activities(candidate.plan))
    for candidate in due:
        if cost >= calls or budget.exhausted():
            break
        if candidate.request_id in seen:
            continue
        record = store.hold_creation(candidate.request_id, lease_seconds=lease)
        if record is None:
            continue  # another invocation holds it, or it was finished meanwhile
        records.append(record)
        missing = len(record.missing_chunks())
        # A shareable request rides along with others removing the same tags: a share of a call.
        if can_share_activities(record.plan):
            cost += max(len(record.source_ids) / SOURCE_CAPS["contact_ids"], 1 / sharing[tuple(sorted(record.tag_ids))])
        else:
            cost += missing
    return records


def _create(services: Ports, budget: TimeBudget, records: list[RequestRecord], report: CreationReport) -> None:
    store = services.store
    requests = {record.request_id: record.plan for record in records}
    missing = {record.request_id: record.missing_chunks() for record in records}
    without_activities: list[str] = []
    retry_later: set[str] = set()
    held_until = {record.request_id: record.lease_until for record in records}
    call_seconds = services.config.connect_timeout_seconds + services.config.read_timeout_seconds
    work = deque(_plan_work(requests, missing))
    try:
        while work:
            unit = work.popleft()
            if budget.exhausted():
                raise _Stop("the Lambda time budget is running out")
            if min(held_until[request.request_id] for request, _ in unit.carried) < services.clock() + call_seconds:
                # Another invocation may take these requests once the hold ends: never create past it.
                raise _Stop("the hold on these requests is ending")
            try:
                activity = services.constant_contact.create_tag_removal(unit.body)
            except PermanentApiError as error:
                if error.status == 400 and len(unit.carried) > 1:
                    # One request's bad contact must not fail the others merged with it: split and retry.
                    count("SharedActivitiesSplit")
                    work.extendleft(reversed(_halves(unit)))
                    continue
                logger.error(
                    "Constant Contact refused an activity",
                    extra={"request_ids": [request.request_id for request, _ in unit.carried], "error": str(error)},
                )
                count("ActivitiesRefused")
                report.activities_refused += 1
                text = str(error)[:ERROR_TEXT_MAX]
                for request, index in unit.carried:
                    last = _done(missing, request.request_id, index)
                    store.record_creation_error(
                        request.request_id, index, f"activity {index + 1} could not be created: {text}", last=last
                    )
                    if last:
                        without_activities.append(request.request_id)
                continue
            except QuotaExceeded:
                services.controls.quota_exceeded()
                raise _Stop("the daily quota is spent") from None
            except AuthenticationError as error:
                count("AuthenticationFailed")
                raise _Stop(f"Constant Contact refused the tokens: {error}") from None
            except ApiError as error:
                logger.warning(
                    "activity not created; its requests are tried again later",
                    extra={"request_ids": [request.request_id for request, _ in unit.carried], "error": str(error)},
                )
                if getattr(error, "maybe_done", False):
                    _ambiguous(services, unit, missing, str(error), without_activities)
                retry_later.update(request.request_id for request, _ in unit.carried)
                continue
            count("ActivitiesCreated")
            report.activities_created += 1
            carried = [
                (request.request_id, index, _done(missing, request.request_id, index))
                for request, index in unit.carried
            ]
            now = services.clock()
            store.record_activity(
                activity,
                carried,
                first_poll_at=now + services.config.first_poll_delay_seconds,
                deadline_at=now + services.config.activity_deadline_hours * 3600,
            )
            logger.info(
                "activity created",
                extra={
                    "activity_id": activity.activity_id,
                    "request_ids": [request_id for request_id, _, _ in carried],
                },
            )
    finally:
        now = services.clock()
        unfinished = [request_id for request_id, indexes in missing.items() if indexes]
        for request_id in unfinished:  # due again: at once, or after a pause when Constant Contact failed
            store.let_go(
                request_id, due_at=now + services.config.create_retry_seconds if request_id in retry_later else now
            )
        if without_activities:
            finish_if_done(services, store.get_requests(without_activities).values())


def _ambiguous(
    services: Ports, unit: _Work, missing: dict[str, set[int]], error: str, without_activities: list[str]
) -> None:
    """A create that may have happened (timeout, dropped answer, 5xx): Constant Contact has no idempotency
    key, so a retry may make a second activity. Count it, list it, and never try a chunk a third time."""
    store = services.store
    for request, index in unit.carried:
        count("AmbiguousCreates")
        times = store.note_ambiguous_create(request.request_id, index, error)
        if times >= MAX_AMBIGUOUS_CREATES:
            last = _done(missing, request.request_id, index)
            store.record_creation_error(
                request.request_id,
                index,
                f"activity {index + 1}: {times} creates got no clear answer ({error[:ERROR_TEXT_MAX]}); Constant "
                "Contact may have created it, so it is not tried again (see `untag ambiguous`)",
                last=last,
            )
            if last:
                without_activities.append(request.request_id)


def _let_go(services: Ports, records: list[RequestRecord], due_at: float) -> None:
    for record in records:
        services.store.let_go(record.request_id, due_at=due_at)


def _plan_work(requests: dict[str, UntagRequest], missing: dict[str, set[int]]) -> list[_Work]:
    """Activities to create: shared ones for small same-tag contact requests, then each large request's chunks."""
    shared: dict[tuple[str, ...], list[_Work]] = {}
    alone: list[_Work] = []
    for request_id, indexes in missing.items():
        if not indexes:
            continue
        request = requests[request_id]
        if can_share_activities(request):
            _pack(shared.setdefault(tuple(sorted(request.tag_ids)), []), request)
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
        present = set(contacts)
        new = [contact for contact in request.source_ids if contact not in present]
        if len(contacts) + len(new) <= cap:
            contacts.extend(new)
            current.carried.append((request, 0))
            return
    groups.append(
        _Work({"source": {"contact_ids": list(request.source_ids)}, "tag_ids": sorted(request.tag_ids)}, [(request, 0)])
    )


def _halves(unit: _Work) -> list[_Work]:
    """A shared activity split in two, each half carrying whole requests (bisection finds the bad one)."""
    middle = len(unit.carried) // 2
    halves = []
    for carried in (unit.carried[:middle], unit.carried[middle:]):
        groups: list[_Work] = []
        for request, _ in carried:
            _pack(groups, request)
        halves.extend(groups)
    return halves


def _done(missing: dict[str, set[int]], request_id: str, index: int) -> bool:
    """Mark one chunk of a request done; True if it was the last one."""
    indexes = missing.get(request_id, set())
    indexes.discard(index)
    return not indexes
