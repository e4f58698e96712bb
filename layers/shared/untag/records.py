"""What the table holds, in the domain's words: requests, activities and the result events due.

Pure code. The store (``untag.store``) converts items to these records and back; nothing above
it sees an item, a Decimal or a JSON-in-a-string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from untag.activity import ActivityStatus
from untag.request import UntagRequest


class RequestStatus(StrEnum):
    """A recorded request: its activities being created, then pending, then finished (its event stored)."""

    CREATING = "creating"
    PENDING = "pending"
    FINISHED = "finished"


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

    @property
    def plan(self) -> UntagRequest:
        """The canonical request the plan describes."""
        return UntagRequest(
            self.request_id, self.source_type, self.source_ids, self.tag_ids, self.exclude_contact_ids, self.metadata
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
