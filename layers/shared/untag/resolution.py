"""Resolving names: tag names to tag ids, e-mail addresses to contact ids, and previews (contract section 4).

A request with ``tag_names``, ``source.emails``, ``exclude.emails`` or ``dry_run`` is accepted
``resolving``, on the ``RESOLVE`` work list. The intake (with its time left) and every poller run
resolve what is due, frugally:

- tag names through the tag cache (``GET /contact_tags``, 500 a page), refreshed on a miss at most
  once per ``TAG_REFRESH_SECONDS``;
- addresses through the contact directory (``untag.directory``): it answers from the table, and is
  kept current by an incremental sync (``GET /contacts?status=all&updated_after=...``, 500 a page).
  An address it does not know is unknown to Constant Contact once the directory has caught up with
  the moment the request was received; until then (a cold directory) Constant Contact is asked
  address by address (``GET /contacts?email=...``);
- previews count contacts with ``GET /contacts?...&include_count=true&limit=1``.

Sync and tag refreshes spend the ``sync`` share of the daily quota, lookups and counts the
``lookups`` share (``Controls.take_calls``): creating and polling activities keep the rest. A
request that cannot be resolved yet waits on the list; past the service's deadline it is resolved
with what is known. Then it is created like any other request, or finished: ``failed`` when no tag
(or, for an ``emails`` source, no contact) resolves, ``previewed`` for a dry run. Addresses never
appear in logs.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from untag.budget import TimeBudget, next_utc_midnight
from untag.constant_contact import ApiError, AuthenticationError, Contact, QuotaExceeded
from untag.creation import planned_chunks
from untag.directory_sync import sync_directory
from untag.observability import count, logger
from untag.ports import Ports
from untag.records import UNRESOLVED_EMAILS_SHOWN, RequestRecord, Resolution, TagCache
from untag.request import FLAG_SOURCES, METADATA_MAX_BYTES, TAG_IDS_MAX, UntagRequest, plan_activities
from untag.result_event import finished_event, parse_utc, previewed_event, utc_timestamp
from untag.settlement import publish

PAGE = 50  # requests read from the resolution work list at a time
# What a resolved request's record holds (ids, tags, what did not resolve, metadata) must fit one DynamoDB item
# (400 KB, docs/aws-limits.md), with room for its activities and creation errors.
RESOLVED_RECORD_MAX_BYTES = 330_000
LOOKUPS_AT_A_TIME = 25  # calls taken from the lookups share at a time
COUNT_LISTS_CAP = 25  # GET /contacts?lists=... takes at most 25 list ids
COUNT_TAGS_CAP = 50  # GET /contacts?tags=... takes at most 50 tag ids


@dataclass
class ResolutionReport:
    resolved: int = 0
    finished: int = 0
    waiting: int = 0
    stopped: str = ""


class _Wait(Exception):
    """Not resolvable yet (a quota share spent, the time budget low): due again at ``until``."""

    def __init__(self, reason: str, until: float):
        super().__init__(reason)
        self.until = until


class _Stop(Exception):
    """Stop resolving in this invocation (daily quota, tokens)."""


def resolve_due(services: Ports, budget: TimeBudget) -> ResolutionReport:
    """Resolve the due requests of the ``RESOLVE`` work list while the time budget allows."""
    report = ResolutionReport()
    if services.controls.quota_spent():
        report.stopped = "daily quota spent"
        return report
    run = _Run(services, budget)
    seen: set[str] = set()
    try:
        while not budget.exhausted():
            due = [
                record
                for record in services.store.due_resolutions(until=services.clock(), limit=PAGE)
                if record.request_id not in seen
            ]
            if not due:
                break
            for candidate in due:
                seen.add(candidate.request_id)
                if budget.exhausted():
                    break
                record = services.store.hold_resolution(candidate.request_id, lease_seconds=budget.lease_seconds())
                if record is not None:
                    _resolve(run, record, report)
    except _Stop as stop:
        report.stopped = str(stop)
        logger.info("resolution stopped for this invocation", extra={"reason": report.stopped})
    publish(services, run.publications)
    return report


def _resolve(run: _Run, record: RequestRecord, report: ResolutionReport) -> None:
    services = run.services
    store = services.store
    try:
        plan, resolution, error = run.resolve(record)
        contacts = run.count_contacts(plan) if record.dry_run and error is None else None
    except _Wait as wait:
        report.waiting += 1
        logger.info("request waits to be resolved", extra={"request_id": record.request_id, "reason": str(wait)})
        store.let_go(record.request_id, due_at=wait.until)
        return
    except QuotaExceeded:
        services.controls.quota_exceeded()
        store.let_go(record.request_id, due_at=services.clock())
        raise _Stop("the daily quota is spent") from None
    except AuthenticationError as error:
        count("AuthenticationFailed")
        store.let_go(record.request_id, due_at=services.clock())
        raise _Stop(f"Constant Contact refused the tokens: {error}") from None
    except ApiError as error:
        logger.warning(
            "could not resolve a request now; it is tried again later",
            extra={"request_id": record.request_id, "error": str(error)},
        )
        store.let_go(record.request_id, due_at=services.clock() + services.config.create_retry_seconds)
        return
    except Exception as failure:  # noqa: BLE001 - one request's failure must not stop the others, nor loop forever
        logger.exception("resolving a request failed", extra={"request_id": record.request_id})
        count("ResolutionErrors")
        if not run.past_deadline(record):
            store.let_go(record.request_id, due_at=services.clock() + services.config.create_retry_seconds)
            return
        plan, resolution, contacts = record.plan, Resolution(), None
        error = f"request: could not be resolved before the service's deadline ({type(failure).__name__})"
    count("RequestsResolved")
    if resolution.unresolved_tag_names:
        count("TagNamesUnresolved", len(resolution.unresolved_tag_names))
    if resolution.unresolved_emails:
        count("EmailsUnresolved", resolution.unresolved_emails)
    if error is None and not record.dry_run:
        if store.resolve_request(
            record.request_id,
            tag_ids=plan.tag_ids,
            source_ids=plan.source_ids,
            exclude_contact_ids=plan.exclude_contact_ids,
            planned=planned_chunks(plan),
            resolution=resolution,
        ):
            report.resolved += 1
        return
    now = utc_timestamp(services.clock())
    if error is not None:
        event = finished_event(
            request_id=record.request_id,
            tag_ids=plan.tag_ids,
            source_type=record.source_type,
            metadata=record.metadata,
            activities=[],
            creation_errors=[error],
            received_at=record.received_at,
            finished_at=now,
            resolution=resolution,
        )
    else:
        event = previewed_event(
            record,
            tag_ids=plan.tag_ids,
            activities=len(plan_activities(plan)),
            contacts=contacts,
            resolution=resolution if record.request.uses_names else None,
            unresolved=resolution.unresolved(),
            finished_at=now,
        )
    publication = store.finish_request(record.request_id, event)
    if publication is not None:
        count("RequestsFailed" if error is not None else "RequestsPreviewed")
        report.finished += 1
        run.publications.append(publication)


class _Run:
    """One invocation's resolving: the tag cache and the directory's state read once, the shares taken."""

    def __init__(self, services: Ports, budget: TimeBudget):
        self.services = services
        self.budget = budget
        self.publications: list = []
        self._tags: TagCache | None = None
        self._tags_refreshed = False
        self._synced = False
        self._holder = uuid.uuid4().hex

    # -- one request -----------------------------------------------------------------------------

    def resolve(self, record: RequestRecord) -> tuple[UntagRequest, Resolution, str | None]:
        """The request with ids only, what resolved, and why it fails (None: it does not)."""
        request = record.request
        final = self.past_deadline(record)
        tag_ids, missing_names = list(request.tag_ids), []
        resolved_tags = 0
        if request.tag_names:
            found, missing_names = self._tag_ids(request.tag_names, final)
            resolved_tags = len(found)
            tag_ids = list(dict.fromkeys(tag_ids + found))
        source_emails = request.source_ids if request.source_type == "emails" else ()
        emails = list(dict.fromkeys(source_emails + request.exclude_emails))
        contacts = self._contact_ids(emails, record, final) if emails else {}
        unresolved = [email for email in emails if email not in contacts]
        resolution = Resolution(
            contacts=len(contacts),
            tags=resolved_tags,
            unresolved_tag_names=tuple(missing_names),
            unresolved_emails=len(unresolved),
            unresolved_emails_first=tuple(unresolved[:UNRESOLVED_EMAILS_SHOWN]),
        )
        source_ids = (
            tuple(dict.fromkeys(contacts[email] for email in source_emails if email in contacts))
            if request.source_type == "emails"
            else request.source_ids
        )
        excluded = tuple(
            dict.fromkeys(
                request.exclude_contact_ids
                + tuple(contacts[email] for email in request.exclude_emails if email in contacts)
            )
        )
        plan = UntagRequest(
            request.request_id,
            "contact_ids" if request.source_type == "emails" else request.source_type,
            source_ids,
            tuple(tag_ids),
            excluded,
            request.metadata,
        )
        error = None
        cap, activities = self.services.config.max_activities_per_request, len(plan_activities(plan))
        if not tag_ids:
            error = (
                f"no tag resolved: none of the {len(request.tag_names)} tag names matches a Constant Contact "
                "tag, and no tag_ids were given"
            )
        elif request.source_type == "emails" and not source_ids:
            error = (
                f"no contact resolved: none of the {len(source_emails)} e-mail addresses matches a Constant "
                "Contact contact"
            )
        elif _record_bytes(plan, resolution) > RESOLVED_RECORD_MAX_BYTES:
            error = (
                f"request: resolves to {len(plan.source_ids)} source ids and {len(plan.exclude_contact_ids)} excluded "
                "contact ids, more than one request's record holds; split it into smaller requests"
            )
        elif len(tag_ids) > TAG_IDS_MAX or activities > cap:
            # (a name may match several tags: the caps checked on the request are checked again on what it became)
            error = (
                f"request: resolves to {len(tag_ids)} tags and {activities} activities, more than "
                f"the caps of {TAG_IDS_MAX} tags and {cap} activities per request"
            )
        return plan, resolution, error

    def past_deadline(self, record: RequestRecord) -> bool:
        received = parse_utc(record.received_at) or self.services.clock()
        return self.services.clock() - received > self.services.config.activity_deadline_hours * 3600

    # -- tag names -------------------------------------------------------------------------------

    def _tag_ids(self, names: tuple[str, ...], final: bool) -> tuple[list[str], list[str]]:
        config = self.services.config
        if self._tags is None:
            self._tags = self.services.directory.tag_cache()
        found, missing = self._tags.match(names)
        stale = self._tags.refreshed_at <= self.services.clock() - config.tag_refresh_seconds
        if missing and stale and not self._tags_refreshed:
            self._refresh_tags(final)
            found, missing = self._tags.match(names)
        return found, missing

    def _refresh_tags(self, final: bool) -> None:
        """Read every tag (GET /contact_tags, 500 a page) into the cache: one instance at a time (a lease), and
        not again if another refreshed it meanwhile."""
        controls, now = self.services.controls, self.services.clock()
        if controls.acquire("tag-refresh", self._holder, self.budget.lease_seconds()) is None:
            if self._tags.refreshed_at or final:
                return  # the old cache answers; the refresh under way serves the next runs
            raise _Wait("another instance is reading the tags", now + 5)
        try:
            cache = self.services.directory.tag_cache()
            if cache.refreshed_at > now - self.services.config.tag_refresh_seconds:
                self._tags, self._tags_refreshed = cache, True  # refreshed by another instance meanwhile
                return
            self._read_tags(final)
        finally:
            controls.release("tag-refresh", self._holder)

    def _read_tags(self, final: bool) -> None:
        tags, link, started = [], None, self.services.clock()
        while True:
            if not self._take("sync", 1):
                if self._tags.refreshed_at or final:
                    return  # the old cache answers
                raise _Wait("the sync share of the daily quota is spent", next_utc_midnight(started))
            self._check_time()
            page, link = self.services.constant_contact.list_tags(next_link=link)
            tags.extend(page)
            if not link:
                break
        self._tags = TagCache.of(tags, started)
        self._tags_refreshed = True
        self.services.directory.save_tag_cache(self._tags)
        count("TagCacheRefreshed")

    # -- e-mail addresses ------------------------------------------------------------------------

    def _contact_ids(self, emails: list[str], record: RequestRecord, final: bool) -> dict[str, str]:
        directory = self.services.directory
        received = record.received_epoch or (parse_utc(record.received_at) or self.services.clock()) + 1
        received = min(received, self.services.clock())  # (a sender's clock ahead of ours: now will do)
        found = directory.lookup(emails)
        missing = [email for email in emails if email not in found]
        if not missing:
            return found
        state = directory.sync_state()
        if not state.current_for(received) and not self._synced:
            state = sync_directory(self.services, self.budget, holder=self._holder) or state
            self._synced = True
            found.update(directory.lookup(missing))
            missing = [email for email in missing if email not in found]
        if not missing or state.current_for(received):
            return found  # the directory has caught up: what it does not know, Constant Contact does not
        if state.synced_until is not None and not final:  # warm, seconds behind: the next run's sync catches up
            raise _Wait("the contact directory catches up with this request", received)
        return {**found, **self._look_up(missing, final)}  # a cold directory: address by address

    def _look_up(self, emails: list[str], final: bool) -> dict[str, str]:
        """Ask Constant Contact address by address (a cold directory), within the lookups share."""
        found: dict[str, str] = {}
        remaining = list(emails)
        while remaining:
            granted = self._take("lookups", min(LOOKUPS_AT_A_TIME, len(remaining)))
            if not granted:
                if final:
                    return found
                raise _Wait("the lookups share of the daily quota is spent", next_utc_midnight(self.services.clock()))
            batch, remaining = remaining[:granted], remaining[granted:]
            for position, email in enumerate(batch):
                if self.budget.exhausted():
                    self.services.controls.return_calls("lookups", granted - position)
                    raise _Wait("the time budget ran low", self.services.clock())
                contact_id = self.services.constant_contact.find_contact(email)
                if contact_id:
                    found[email] = contact_id
            count("ContactLookups", len(batch))
        self.services.directory.apply(Contact(contact_id, email) for email, contact_id in found.items())
        return found

    # -- previews ---------------------------------------------------------------------------------

    def count_contacts(self, plan: UntagRequest) -> int | None:
        """The contacts a request would touch, where Constant Contact counts them cheaply (None: it cannot)."""
        if plan.source_type == "new_subscriber":
            return None
        if plan.source_type == "contact_ids":
            return len(plan.source_ids)
        if plan.source_type in FLAG_SOURCES:
            criteria = [{"status": "active"}]
        else:
            name, cap = ("lists", COUNT_LISTS_CAP) if plan.source_type == "list_ids" else ("tags", COUNT_TAGS_CAP)
            ids = plan.source_ids
            criteria = [{name: ",".join(ids[start : start + cap])} for start in range(0, len(ids), cap)]
        if not self._take("lookups", len(criteria)):
            raise _Wait("the lookups share of the daily quota is spent", next_utc_midnight(self.services.clock()))
        counts = [self.services.constant_contact.count_contacts(criterion) for criterion in criteria]
        return None if any(total is None for total in counts) else sum(counts)

    # -- shares and time ---------------------------------------------------------------------------

    def _take(self, purpose: str, calls: int) -> int:
        return self.services.controls.take_calls(purpose, calls, self.services.config.calls_for(purpose))

    def _check_time(self) -> None:
        if self.budget.exhausted():
            raise _Wait("the time budget ran low", self.services.clock())


def _record_bytes(plan: UntagRequest, resolution: Resolution) -> int:
    """About what the plan and the resolution take in the request's record (4 bytes per list entry's framing)."""
    ids = plan.source_ids + plan.exclude_contact_ids + plan.tag_ids
    return sum(len(value) + 4 for value in ids) + len(json.dumps(resolution.as_item())) + METADATA_MAX_BYTES
