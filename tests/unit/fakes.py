"""In-memory fakes of the use cases' ports (``untag.ports``): the table, the controls, Constant Contact,
SNS, the clock and the Lambda time budget. They keep the adapters' contracts (conditional transitions,
work lists, leases) so that the use cases can be tested in milliseconds; the moto and simulator tests
check the real adapters against the same contracts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from untag.activity import ActivityStatus
from untag.budget import TimeBudget
from untag.config import Config
from untag.constant_contact import Contact, PermanentApiError, QuotaExceeded, Tag
from untag.records import (
    ActivityRecord,
    AmbiguousCreate,
    Publication,
    RequestRecord,
    RequestStatus,
    Resolution,
    SyncState,
    TagCache,
)
from untag.request import UntagRequest


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Store:
    """The activity table: requests with their work list, activities with theirs, publications due."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.requests: dict[str, RequestRecord] = {}
        self.creation_due: dict[str, float] = {}  # request id -> due_at (on the CREATE list)
        self.resolution_due: dict[str, float] = {}  # request id -> due_at (on the RESOLVE list)
        self.activities: dict[str, ActivityRecord] = {}
        self.publications: dict[tuple[str, str], Publication] = {}
        self.publication_due: set[tuple[str, str]] = set()
        self.ambiguous: list[AmbiguousCreate] = []

    # requests
    def accept_request(
        self,
        request: UntagRequest,
        *,
        received_at: str,
        planned: int,
        lease_seconds: float | None,
        received_epoch: float = 0.0,
    ) -> tuple[bool, RequestRecord]:
        if request.request_id in self.requests:
            return False, self.requests[request.request_id]
        lease_until = self.clock() + lease_seconds if lease_seconds else 0.0
        resolving = request.needs_resolution
        record = RequestRecord(
            request.request_id,
            RequestStatus.RESOLVING if resolving else RequestStatus.CREATING,
            request.fingerprint,
            request.tag_ids,
            request.source_type,
            received_at,
            planned,
            request.source_ids,
            request.exclude_contact_ids,
            request.metadata,
            lease_until=lease_until,
            tag_names=request.tag_names,
            exclude_emails=request.exclude_emails,
            dry_run=request.dry_run,
            received_epoch=received_epoch,
        )
        self.requests[request.request_id] = record
        (self.resolution_due if resolving else self.creation_due)[request.request_id] = max(self.clock(), lease_until)
        return True, record

    def due_resolutions(self, *, until: float | None, limit: int) -> list[RequestRecord]:
        due = sorted((at, rid) for rid, at in self.resolution_due.items() if until is None or at <= until)
        return [self.requests[request_id] for _, request_id in due[:limit]]

    def hold_resolution(self, request_id: str, *, lease_seconds: float) -> RequestRecord | None:
        record = self.requests[request_id]
        if record.status is not RequestStatus.RESOLVING or record.lease_until >= self.clock():
            return None
        record = self.requests[request_id] = replace(record, lease_until=self.clock() + lease_seconds)
        self.resolution_due[request_id] = record.lease_until
        return record

    def resolve_request(
        self,
        request_id: str,
        *,
        tag_ids: tuple[str, ...],
        source_ids: tuple[str, ...],
        exclude_contact_ids: tuple[str, ...],
        planned: int,
        resolution: Resolution,
    ) -> bool:
        record = self.requests[request_id]
        if record.status is not RequestStatus.RESOLVING:
            return False
        self.requests[request_id] = replace(
            record,
            status=RequestStatus.CREATING,
            tag_ids=tag_ids,
            source_ids=source_ids,
            exclude_contact_ids=exclude_contact_ids,
            planned=planned,
            resolution=resolution,
            exclude_emails=(),
            tag_names=(),
            lease_until=0.0,
        )
        self.resolution_due.pop(request_id, None)
        self.creation_due[request_id] = self.clock()
        return True

    def due_creations(self, *, until: float | None, limit: int) -> list[RequestRecord]:
        due = sorted((at, request_id) for request_id, at in self.creation_due.items() if until is None or at <= until)
        return [self.requests[request_id] for _, request_id in due[:limit]]

    def hold_creation(self, request_id: str, *, lease_seconds: float) -> RequestRecord | None:
        record = self.requests[request_id]
        if record.status is not RequestStatus.CREATING or record.lease_until >= self.clock():
            return None
        record = self.requests[request_id] = replace(record, lease_until=self.clock() + lease_seconds)
        self.creation_due[request_id] = record.lease_until
        return record

    def let_go(self, request_id: str, *, due_at: float) -> None:
        record = self.requests[request_id]
        if record.status in (RequestStatus.CREATING, RequestStatus.RESOLVING):
            self.requests[request_id] = replace(record, lease_until=0.0)
            due = self.creation_due if record.status is RequestStatus.CREATING else self.resolution_due
            due[request_id] = due_at

    def get_requests(self, request_ids: Iterable[str]) -> dict[str, RequestRecord]:
        return {request_id: self.requests[request_id] for request_id in request_ids if request_id in self.requests}

    def record_activity(
        self,
        activity: ActivityStatus,
        carried: list[tuple[str, int, bool]],
        *,
        first_poll_at: float,
        deadline_at: float,
    ) -> None:
        self.activities[activity.activity_id] = ActivityRecord(
            activity, tuple(sorted({request_id for request_id, _, _ in carried})), deadline_at, first_poll_at
        )
        for request_id, index, last in carried:
            self._chunk(request_id, index, last, activities={index: activity.activity_id})

    def record_creation_error(self, request_id: str, index: int, message: str, *, last: bool) -> None:
        self._chunk(request_id, index, last, creation_errors={index: message})

    def _chunk(self, request_id: str, index: int, last: bool, **maps: dict[int, Any]) -> None:
        record = self.requests[request_id]
        if record.status is not RequestStatus.CREATING:
            return
        changes: dict[str, Any] = {name: {**getattr(record, name), **value} for name, value in maps.items()}
        if last:
            changes.update(status=RequestStatus.PENDING, source_ids=(), exclude_contact_ids=(), lease_until=0.0)
            self.creation_due.pop(request_id, None)
        self.requests[request_id] = replace(record, **changes)

    def note_ambiguous_create(self, request_id: str, index: int, error: str) -> int:
        record = self.requests[request_id]
        times = record.ambiguous_creates.get(index, 0) + 1
        self.requests[request_id] = replace(record, ambiguous_creates={**record.ambiguous_creates, index: times})
        self.ambiguous.append(AmbiguousCreate(request_id, index, self.clock(), error))
        return times

    def ambiguous_creates(self, *, limit: int = 1000) -> list[AmbiguousCreate]:
        return self.ambiguous[:limit]

    def finish_request(self, request_id: str, event: dict[str, Any]) -> Publication | None:
        record = self.requests[request_id]
        if record.status not in (RequestStatus.PENDING, RequestStatus.RESOLVING):
            return None
        self.resolution_due.pop(request_id, None)
        text = json.dumps(event)
        self.requests[request_id] = replace(
            record, status=RequestStatus.FINISHED, event=text, finished_at=event["finished_at"], creation_errors={}
        )
        return self._due_publication((request_id, "REQUEST"), text, event)

    def put_rejection(self, request_id: str, key: str, event: dict[str, Any]) -> Publication | None:
        where = (request_id, f"REJECTED#{key}")
        if where in self.publications:
            return self.publications[where] if where in self.publication_due else None
        return self._due_publication(where, json.dumps(event), event)

    def _due_publication(self, where: tuple[str, str], text: str, event: dict[str, Any]) -> Publication:
        publication = Publication(where[0], text, event["event_type"], event["state"], stored=where)
        self.publications[where] = publication
        self.publication_due.add(where)
        return publication

    # activities
    def due_activities(self, *, limit: int = 5000) -> list[ActivityRecord]:
        due = [record for record in self.activities.values() if record.due_at is not None]
        return sorted(due, key=lambda record: record.due_at)[:limit]

    def get_activities(self, activity_ids: Iterable[str]) -> dict[str, ActivityRecord]:
        return {aid: self.activities[aid] for aid in activity_ids if aid in self.activities}

    def update_activity(self, activity: ActivityStatus, *, previous_state: str, next_poll_at: float | None) -> bool:
        record = self.activities[activity.activity_id]
        if record.status.state != previous_state:
            return False
        self.activities[activity.activity_id] = replace(
            record,
            status=activity,
            missing_since=None,
            due_at=next_poll_at if next_poll_at is not None else record.due_at,
        )
        return True

    def note_missing(self, activity_id: str, now: float, *, next_poll_at: float) -> float:
        record = self.activities[activity_id]
        since = record.missing_since if record.missing_since is not None else now
        self.activities[activity_id] = replace(record, missing_since=since, due_at=next_poll_at)
        return since

    def postpone_activity(self, activity_id: str, next_poll_at: float) -> None:
        self.activities[activity_id] = replace(self.activities[activity_id], due_at=next_poll_at)

    def settle_activity(self, activity_id: str) -> None:
        self.activities[activity_id] = replace(self.activities[activity_id], due_at=None)

    # publications
    def due_publications(self, *, until: float | None = None, limit: int = 5000) -> list[Publication]:
        return [self.publications[where] for where in sorted(self.publication_due)][:limit]

    def mark_published(self, publications: list[Publication]) -> None:
        for publication in publications:
            self.publication_due.discard(publication.stored)


class Controls:
    def __init__(self):
        self.spent = False
        self.calls_taken: dict[str, int] = {}

    def quota_spent(self) -> bool:
        return self.spent

    def quota_exceeded(self) -> float:
        self.spent = True
        return 0.0

    def acquire(self, name: str, holder: str, lease_seconds: float) -> float | None:
        return 0.0

    def release(self, name: str, holder: str) -> None:
        return None

    def reserve_slot(self, slot: int) -> bool:
        return True

    def take_calls(self, purpose: str, calls: int, share: int) -> int:
        granted = max(0, min(calls, share - self.calls_taken.get(purpose, 0)))
        self.calls_taken[purpose] = self.calls_taken.get(purpose, 0) + granted
        return granted

    def return_calls(self, purpose: str, calls: int) -> None:
        self.calls_taken[purpose] -= calls


class Directory:
    """The contact directory (by address) and the tag cache, in memory."""

    def __init__(self):
        self.contacts: dict[str, str] = {}
        self.state = SyncState()
        self.tags = TagCache()

    def lookup(self, emails: Iterable[str]) -> dict[str, str]:
        return {email: self.contacts[email] for email in emails if email in self.contacts}

    def apply(self, contacts: Iterable[Contact]) -> None:
        for contact in contacts:
            if not contact.deleted:
                self.contacts[contact.email] = contact.contact_id
            elif self.contacts.get(contact.email) == contact.contact_id:
                del self.contacts[contact.email]

    def sync_state(self) -> SyncState:
        return self.state

    def save_sync_state(self, state: SyncState) -> None:
        self.state = state

    def tag_cache(self) -> TagCache:
        return self.tags

    def save_tag_cache(self, cache: TagCache) -> None:
        self.tags = cache


class ConstantContact:
    """Constant Contact as the use cases see it: creates (with scripted failures), reads, a state per activity."""

    def __init__(self):
        self.created: list[dict[str, Any]] = []
        self.failures: list[Exception] = []  # raised by the next creates, in order
        self.refused_contacts: set[str] = set()
        self.states: dict[str, str] = {}  # activity id -> state Constant Contact reports
        self.unknown: set[str] = set()  # activities answered with 404
        self.calls: list[str] = []
        self.tags: dict[str, str] = {}  # tag id -> name
        self.contacts: dict[str, Contact] = {}  # contact id -> contact (updated in order: the sync's order)
        self.page = 2  # entries a page of tags or contacts

    def add_contact(self, email: str, contact_id: str | None = None, *, deleted: bool = False) -> str:
        contact_id = contact_id or f"c-{len(self.contacts) + 1}"
        self.contacts.pop(contact_id, None)
        self.contacts[contact_id] = Contact(contact_id, email, deleted)
        return contact_id

    def list_tags(self, *, next_link: str | None = None) -> tuple[list[Tag], str | None]:
        self.calls.append("tags")
        return self._page([Tag(tag_id, name) for tag_id, name in self.tags.items()], next_link)

    def list_contacts(
        self, *, updated_after: str | None = None, next_link: str | None = None
    ) -> tuple[list[Contact], str | None]:
        self.calls.append("contacts")
        return self._page(list(self.contacts.values()), next_link)

    def find_contact(self, email: str) -> str | None:
        self.calls.append("lookup")
        return next((c.contact_id for c in self.contacts.values() if c.email == email and not c.deleted), None)

    def count_contacts(self, criteria: dict[str, str]) -> int | None:
        self.calls.append("count")
        return 7 * len(next(iter(criteria.values())).split(","))

    def _page(self, items: list[Any], link: str | None) -> tuple[list[Any], str | None]:
        start = int(link or 0)
        end = start + self.page
        return items[start:end], str(end) if end < len(items) else None

    def create_tag_removal(self, body: dict[str, Any]) -> ActivityStatus:
        self.calls.append("create")
        if self.failures:
            raise self.failures.pop(0)
        if self.refused_contacts & set(body["source"].get("contact_ids") or ()):
            raise PermanentApiError("Constant Contact create answered 400 bad: contact refused", status=400)
        self.created.append(body)
        activity_id = f"a-{len(self.created)}"
        self.states[activity_id] = "initialized"
        return ActivityStatus(activity_id, "initialized")

    def get_activity(self, activity_id: str) -> ActivityStatus | None:
        self.calls.append("get")
        return None if activity_id in self.unknown else self._status(activity_id)

    def list_activities(
        self, *, limit: int = 500, next_link: str | None = None
    ) -> tuple[list[ActivityStatus], str | None]:
        self.calls.append("list")
        return [self._status(aid) for aid in self.states if aid not in self.unknown], None

    def _status(self, activity_id: str) -> ActivityStatus:
        state = self.states.get(activity_id, "processing")
        return ActivityStatus(
            activity_id, state, 100 if state == "completed" else 0, 1, 1 if state == "completed" else 0
        )


class QuotaSpent(QuotaExceeded):
    def __init__(self):
        super().__init__("Constant Contact daily quota exceeded", status=429, key="quota_exceeded")


class Publisher:
    def __init__(self):
        self.events: list[dict[str, Any]] = []
        self.refuse = False

    def publish(self, publications: Sequence[Publication]) -> list[bool]:
        if self.refuse:
            return [False] * len(publications)
        self.events.extend(json.loads(publication.event) for publication in publications)
        return [True] * len(publications)


@dataclass
class Services:
    """The ports wired to fakes."""

    clock: Clock = field(default_factory=Clock)
    config: Config = field(
        default_factory=lambda: Config(
            token_secret_id="s", table_name="t", topic_arn="a", requests_per_second=4.0, create_retry_seconds=30.0
        )
    )
    controls: Controls = field(default_factory=Controls)
    constant_contact: ConstantContact = field(default_factory=ConstantContact)
    publisher: Publisher = field(default_factory=Publisher)
    directory: Directory = field(default_factory=Directory)
    store: Store = None  # type: ignore[assignment]

    def __post_init__(self):
        self.store = self.store or Store(self.clock)

    def begin(self, budget: Any) -> None:
        return None


class Context:
    """A Lambda context whose remaining time is what the test says (and shrinks with the fake clock)."""

    def __init__(self, clock: Clock, seconds: float):
        self.clock, self.ends = clock, clock() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.ends - self.clock()) * 1000))


def budget(services: Services, seconds: float = 60.0) -> TimeBudget:
    return TimeBudget(Context(services.clock, seconds), services.config.time_reserve_seconds)
