"""The result event published once per request (contract section 2), and its SNS message attributes.

Pure code. ``event_id`` is derived from the request and its outcome, so every re-publication
of the same outcome carries the same id and subscribers can de-duplicate on it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from untag.activity import ActivityStatus, request_state
from untag.aws_limits import SNS_MESSAGE_MAX_BYTES, sns_entry_bytes
from untag.records import RequestRecord, Resolution
from untag.request import Rejection
from untag.text import utf8_size, valid_unicode

SCHEMA_VERSION = "1"
LIST_SHOWN = 100  # an event lists at most this many activities and errors, and says how many there were
# Every event must fit in one SNS message (256 KiB, body and attributes): keep a margin for the envelope
# fields subscribers' queues add nothing to, and for the attributes.
EVENT_MAX_BYTES = SNS_MESSAGE_MAX_BYTES - 4_096
_EVENT_NAMESPACE = uuid.UUID("5b0f5d4e-5a8c-4c8e-9a54-2f0d2f7c1a11")


def utc_timestamp(epoch: float) -> str:
    """ISO-8601 UTC with a Z, to the second, as in the contract's examples."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(timestamp: Any) -> float | None:
    """Epoch seconds of a ``utc_timestamp`` (None if it is not one)."""
    try:
        return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        return None


def event_id(request_id: str, state: str, discriminator: str = "") -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{request_id}\n{state}\n{discriminator}"))


def finished_event(
    *,
    request_id: str,
    tag_ids: Sequence[str],
    source_type: str,
    metadata: dict[str, Any] | None,
    activities: Sequence[ActivityStatus],
    creation_errors: Sequence[str],
    received_at: str,
    finished_at: str,
    resolution: Resolution | None = None,
) -> dict[str, Any]:
    """The event of a request whose activities are all final (or that failed before any: nothing resolved)."""
    states = [activity.state for activity in activities] + ["failed"] * len(creation_errors)
    state = request_state(states)
    errors = list(creation_errors)
    for activity in activities:
        errors.extend(f"activity {activity.activity_id} {activity.state}: {error}" for error in activity.errors)
        if activity.state != "completed" and not activity.errors:
            errors.append(f"activity {activity.activity_id} ended {activity.state}")
    # Activities that did not complete come first, so that a summarised list still shows what went wrong.
    ordered = sorted(activities, key=lambda activity: activity.state == "completed")
    event = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(request_id, state),
        "event_type": f"untag.{state}",
        "request_id": request_id,
        "state": state,
        "tag_ids": list(tag_ids),
        "source_type": source_type,
        "activities": [activity.as_event() for activity in ordered],
        "errors": errors,
        "metadata": metadata,
        "received_at": received_at,
        "finished_at": finished_at,
    }
    if resolution is not None:  # the request named tags or contacts (contract section 4)
        event["resolved"] = resolution.resolved()
        event["unresolved"] = resolution.unresolved()
    return fit_in_one_message(event)


def previewed_event(
    record: RequestRecord,
    *,
    tag_ids: Sequence[str],
    activities: int,
    contacts: int | None,
    resolution: Resolution | None,
    unresolved: dict[str, Any],
    finished_at: str,
) -> dict[str, Any]:
    """The answer to a dry run: what the request would do, and nothing done."""
    event = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(record.request_id, "previewed"),
        "event_type": "untag.previewed",
        "request_id": record.request_id,
        "state": "previewed",
        "tag_ids": list(tag_ids),
        "source_type": record.source_type,
        "activities": [],
        "errors": [],
        "metadata": record.metadata,
        "received_at": record.received_at,
        "finished_at": finished_at,
        "preview": {"activities": activities, "contacts": contacts, "unresolved": unresolved},
    }
    if resolution is not None:
        event["resolved"] = resolution.resolved()
        event["unresolved"] = resolution.unresolved()
    return fit_in_one_message(event)


def rejected_event(rejection: Rejection, *, received_at: str, finished_at: str) -> dict[str, Any]:
    """The event of a message that broke the request contract."""
    event = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(rejection.request_id, "rejected", rejection_key(rejection)),
        "event_type": "untag.rejected",
        "request_id": rejection.request_id,
        "state": "rejected",
        "tag_ids": list(rejection.tag_ids) if rejection.tag_ids else None,
        "source_type": rejection.source_type,
        "activities": [],
        "errors": list(rejection.errors),
        "metadata": rejection.metadata,
        "received_at": received_at,
        "finished_at": finished_at,
        "original_body": valid_unicode(rejection.original_body),
    }
    return fit_in_one_message(event)


def fit_in_one_message(event: dict[str, Any]) -> dict[str, Any]:
    """Summarise an event so that it fits in one SNS message; ``truncated`` says what was cut.

    Lists keep their first ``LIST_SHOWN`` entries and their count; an original body too long to
    echo whole keeps its first bytes, its size and its SHA-256, so that the sender can find it.
    """
    truncated: dict[str, Any] = {}
    for holder, key, name in _lists(event):
        if name != "tag_ids" and not name.endswith("emails.first"):  # (those two are bounded already)
            _cut(holder, key, name, LIST_SHOWN, truncated)
    if truncated:
        event["truncated"] = truncated
    if event_bytes(event) <= EVENT_MAX_BYTES:
        return event
    body = event.get("original_body")
    if isinstance(body, str):
        event["original_body"] = ""
        truncated["original_body"] = {
            "bytes": utf8_size(body),
            "shown_bytes": 0,
            "sha256": hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest(),
        }
        event["truncated"] = truncated
        room = EVENT_MAX_BYTES - event_bytes(event)
        shown = _prefix_within(body, room)
        event["original_body"] = shown
        truncated["original_body"]["shown_bytes"] = utf8_size(shown)
    shown = LIST_SHOWN
    while event_bytes(event) > EVENT_MAX_BYTES and shown > 0:  # only with pathological per-entry sizes
        shown //= 2
        for holder, key, name in _lists(event):
            _cut(holder, key, name, shown, truncated)
        event["truncated"] = truncated
    return event


def _lists(event: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """The event's lists that may be summarised: (the object holding one, its key, its name in ``truncated``).
    What did not resolve may hold 500 names of 255 characters, each 6 bytes in JSON when not ASCII."""
    lists = [(event, name, name) for name in ("activities", "errors", "tag_ids")]
    for where, unresolved in (
        ("unresolved", event.get("unresolved")),
        ("preview.unresolved", (event.get("preview") or {}).get("unresolved")),
    ):
        if isinstance(unresolved, dict):
            lists.append((unresolved, "tag_names", f"{where}.tag_names"))
            if isinstance(unresolved.get("emails"), dict):
                lists.append((unresolved["emails"], "first", f"{where}.emails.first"))
    return [(holder, key, name) for holder, key, name in lists if isinstance(holder.get(key), list)]


def _cut(holder: dict[str, Any], key: str, name: str, shown: int, truncated: dict[str, Any]) -> None:
    """Keep the first ``shown`` entries of a list; ``truncated[name]`` says how many there were."""
    if len(holder[key]) > shown:
        truncated[name] = {"count": truncated.get(name, {}).get("count", len(holder[key])), "shown": shown}
        holder[key] = holder[key][:shown]


def event_bytes(event: dict[str, Any]) -> int:
    """The size SNS counts for this event: its JSON message and its attributes."""
    return sns_entry_bytes(json.dumps(event), message_attributes(event))


def _prefix_within(text: str, room: int) -> str:
    """The longest prefix of ``text`` whose JSON string form takes at most ``room`` bytes."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if len(json.dumps(text[:middle])) - 2 <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def rejection_key(rejection: Rejection) -> str:
    """Distinguishes two different bad bodies sent under one request id."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, valid_unicode(rejection.original_body)))[:8]


def message_attributes(event: dict[str, Any]) -> dict[str, dict[str, str]]:
    """SNS message attributes that subscription filter policies can match on."""
    return attributes(event["event_type"], event["state"])


def attributes(event_type: str, state: str) -> dict[str, dict[str, str]]:
    return {
        "event_type": {"DataType": "String", "StringValue": event_type},
        "state": {"DataType": "String", "StringValue": state},
    }
