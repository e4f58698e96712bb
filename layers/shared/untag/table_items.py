"""The activity table's keys and work lists, and the conversion of its items to records (``untag.records``).

Only the DynamoDB adapter (``untag.store``) uses this module; nothing above it sees an item.
"""

from __future__ import annotations

import json
from typing import Any

from untag.activity import ActivityStatus
from untag.records import ActivityRecord, Publication, RequestRecord, RequestStatus, Resolution

DUE_INDEX = "due-index"
DUE_ACTIVITY = "ACTIVITY"
DUE_PUBLISH = "PUBLISH"
DUE_CREATE = "CREATE"
DUE_AMBIGUOUS = "AMBIGUOUS"
DUE_RESOLVE = "RESOLVE"


def request_key(request_id: str) -> dict[str, str]:
    return {"pk": f"REQUEST#{request_id}", "sk": "REQUEST"}


def activity_key(activity_id: str) -> dict[str, str]:
    return {"pk": f"ACTIVITY#{activity_id}", "sk": "ACTIVITY"}


def rejection_key(request_id: str, key: str) -> dict[str, str]:
    return {"pk": f"REQUEST#{request_id}", "sk": f"REJECTED#{key}"}


def request_record(item: dict[str, Any]) -> RequestRecord:
    return RequestRecord(
        request_id=item["request_id"],
        status=RequestStatus(item["status"]),
        fingerprint=item.get("fingerprint", ""),
        tag_ids=tuple(item.get("tag_ids") or ()),
        source_type=item.get("source_type", ""),
        received_at=item.get("received_at", ""),
        planned=int(item.get("planned", 1)),
        source_ids=tuple(item.get("source_ids") or ()),
        exclude_contact_ids=tuple(item.get("exclude_contact_ids") or ()),
        metadata=json.loads(item["metadata"]) if item.get("metadata") else None,
        activities={int(index): value for index, value in (item.get("activities") or {}).items()},
        creation_errors={int(index): value for index, value in (item.get("creation_errors") or {}).items()},
        ambiguous_creates={int(index): int(value) for index, value in (item.get("ambiguous_creates") or {}).items()},
        lease_until=float(item.get("lease_until") or 0),
        finished_at=item.get("finished_at"),
        event=item.get("event"),
        tag_names=tuple(item.get("tag_names") or ()),
        exclude_emails=tuple(item.get("exclude_emails") or ()),
        dry_run=bool(item.get("dry_run", False)),
        received_epoch=float(item.get("received_epoch") or 0),
        resolution=Resolution.from_item(json.loads(item["resolution"])) if item.get("resolution") else None,
    )


def activity_record(item: dict[str, Any]) -> ActivityRecord:
    fields = {name: item[name] for name in ActivityStatus.__dataclass_fields__ if name in item}
    fields["errors"] = tuple(fields.get("errors") or ())
    return ActivityRecord(
        status=ActivityStatus(**fields),
        request_ids=tuple(item.get("request_ids") or ()),
        deadline_at=float(item.get("deadline_at", 0)),
        due_at=float(item["due_at"]) if "due_at" in item else None,
        missing_since=float(item["missing_since"]) if "missing_since" in item else None,
    )


def publication(item: dict[str, Any]) -> Publication:
    event = json.loads(item["event"])
    return Publication(item["request_id"], item["event"], event["event_type"], event["state"], stored=item)
