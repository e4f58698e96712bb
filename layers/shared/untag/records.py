"""What the table holds, in the domain's words: requests, activities and the result events due.

Pure code. The store (``untag.store``) converts items to these records and back; nothing above
it sees an item, a Decimal or a JSON-in-a-string.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from untag.activity import ActivityStatus
from untag.names import tag_name_key
from untag.request import UntagRequest


class RequestStatus(StrEnum):
    """A recorded request: its names being resolved (or its preview answered), its activities being created,
    then pending, then finished (its event stored)."""

    RESOLVING = "resolving"
    CREATING = "creating"
    PENDING = "pending"
    FINISHED = "finished"


UNRESOLVED_EMAILS_SHOWN = 100  # a result event lists the first 100 unresolved addresses, and their count


@dataclass(frozen=True)
class Resolution:
    """What the names and e-mail addresses of a request resolved to (contract section 4)."""

    contacts: int = 0  # contact ids found for the request's e-mail addresses (source and exclude)
    tags: int = 0  # tag ids found for its tag names
    unresolved_tag_names: tuple[str, ...] = ()
    unresolved_emails: int = 0
    unresolved_emails_first: tuple[str, ...] = ()

    def resolved(self) -> dict[str, int]:
        return {"contacts": self.contacts, "tags": self.tags}

    def unresolved(self) -> dict[str, Any]:
        return {
            "tag_names": list(self.unresolved_tag_names),
            "emails": {"count": self.unresolved_emails, "first": list(self.unresolved_emails_first)},
        }

    def as_item(self) -> dict[str, Any]:
        return {"resolved": self.resolved(), "unresolved": self.unresolved()}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Resolution:
        unresolved = item.get("unresolved") or {}
        emails = unresolved.get("emails") or {}
        return cls(
            contacts=int((item.get("resolved") or {}).get("contacts", 0)),
            tags=int((item.get("resolved") or {}).get("tags", 0)),
            unresolved_tag_names=tuple(unresolved.get("tag_names") or ()),
            unresolved_emails=int(emails.get("count", 0)),
            unresolved_emails_first=tuple(emails.get("first") or ()),
        )


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    status: RequestStatus
    fingerprint: str
    tag_ids: tuple[str, ...]
    source_type: str
    received_at: str
    planned: int = 1
    source_ids: tuple[str, ...] = ()  # the plan: kept while the activities are being created
    exclude_contact_ids: tuple[str, ...] = ()
    metadata: dict[str, Any] | None = None
    activities: dict[int, str] = field(default_factory=dict)  # chunk index -> activity id
    creation_errors: dict[int, str] = field(default_factory=dict)  # chunk index -> why it was not created
    ambiguous_creates: dict[int, int] = field(default_factory=dict)  # chunk index -> creates without a clear answer
    lease_until: float = 0.0  # held by an invocation creating its activities until then
    finished_at: str | None = None
    event: str | None = None  # the result event, as published (JSON), once finished
    tag_names: tuple[str, ...] = ()  # as asked (contract section 4)
    exclude_emails: tuple[str, ...] = ()  # until resolved
    dry_run: bool = False
    resolution: Resolution | None = None  # once the names and addresses are resolved
    received_epoch: float = 0.0  # received_at to the millisecond (0: not recorded)

    @property
    def request(self) -> UntagRequest:
        """The request as accepted (while resolving: with its names and addresses)."""
        return UntagRequest(
            self.request_id,
            self.source_type,
            self.source_ids,
            self.tag_ids,
            self.exclude_contact_ids,
            self.metadata,
            self.tag_names,
            self.exclude_emails,
            self.dry_run,
        )

    @property
    def plan(self) -> UntagRequest:
        """The canonical request the plan describes (an ``emails`` source resolved to contact ids)."""
        source_type = "contact_ids" if self.source_type == "emails" else self.source_type
        return UntagRequest(
            self.request_id, source_type, self.source_ids, self.tag_ids, self.exclude_contact_ids, self.metadata
        )

    def missing_chunks(self) -> set[int]:
        """Chunks with neither an activity nor a creation error yet."""
        return set(range(self.planned)) - self.activities.keys() - self.creation_errors.keys()

    def activity_ids(self) -> list[str]:
        return list(dict.fromkeys(self.activities[index] for index in sorted(self.activities)))

    def creation_error_list(self) -> list[str]:
        return [self.creation_errors[index] for index in sorted(self.creation_errors)]


@dataclass(frozen=True)
class ActivityRecord:
    """What Constant Contact last said of an activity, and the requests it carries."""

    status: ActivityStatus
    request_ids: tuple[str, ...]
    deadline_at: float
    due_at: float | None = None  # when the poller looks next; None once settled (off the work list)
    missing_since: float | None = None  # Constant Contact answered 404 since then

    @property
    def activity_id(self) -> str:
        return self.status.activity_id

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def with_status(self, status: ActivityStatus) -> ActivityRecord:
        return ActivityRecord(status, self.request_ids, self.deadline_at, self.due_at, self.missing_since)


@dataclass(frozen=True)
class Publication:
    """A result event stored and due to be published (a finished request's or a rejection's)."""

    request_id: str
    event: str  # JSON, published exactly as stored
    event_type: str
    state: str
    stored: Any = field(default=None, repr=False, compare=False)  # the store's own handle on the item


@dataclass(frozen=True)
class AmbiguousCreate:
    """A create that got no clear answer: Constant Contact may have made an activity nobody follows."""

    request_id: str
    chunk: int
    at: float
    error: str


@dataclass(frozen=True)
class SyncState:
    """How far the contact directory has caught up with Constant Contact."""

    synced_until: float | None = None  # every change before this moment is in the directory (None: never)
    pass_started_at: float | None = None  # the pass in progress started then
    next_link: str | None = None  # and goes on from this page
    contacts_synced: int = 0

    @property
    def in_use(self) -> bool:
        return self.synced_until is not None or self.pass_started_at is not None

    def current_for(self, moment: float) -> bool:
        """Whether every contact Constant Contact had at ``moment`` is in the directory."""
        return self.synced_until is not None and self.synced_until >= moment

    def started(self, now: float) -> SyncState:
        return replace(self, pass_started_at=now, next_link=None)

    def advanced(self, next_link: str | None, contacts: int) -> SyncState:
        total = self.contacts_synced + contacts
        if next_link:
            return replace(self, next_link=next_link, contacts_synced=total)
        return SyncState(self.pass_started_at, None, None, total)  # the pass is complete


@dataclass(frozen=True)
class TagCache:
    refreshed_at: float = 0.0  # 0: never read
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tag_name_key -> tag ids

    def match(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """(the tag ids the names resolve to, the names that match no tag)."""
        ids: list[str] = []
        missing: list[str] = []
        for name in names:
            found = self.names.get(tag_name_key(name))
            if found:
                ids.extend(found)
            else:
                missing.append(name)
        return list(dict.fromkeys(ids)), missing

    @classmethod
    def of(cls, tags: Iterable[Any], refreshed_at: float) -> TagCache:
        names: dict[str, list[str]] = {}
        for tag in tags:
            names.setdefault(tag_name_key(tag.name), []).append(tag.tag_id)
        return cls(refreshed_at, {key: tuple(ids) for key, ids in names.items()})
