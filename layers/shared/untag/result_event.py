"""The result event published once per request (contract section 2), and its SNS message attributes.

Pure code. ``event_id`` is derived from the request and its outcome, so every re-publication
of the same outcome carries the same id and subscribers can de-duplicate on it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Sequence

from untag.activity import ActivityStatus, request_state
from untag.request import Rejection

SCHEMA_VERSION = "1"
_EVENT_NAMESPACE = uuid.UUID("5b0f5d4e-5a8c-4c8e-9a54-2f0d2f7c1a11")


def utc_timestamp(epoch: float) -> str:
    """ISO-8601 UTC with a Z, to the second, as in the contract's examples."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
) -> dict[str, Any]:
    """The event of a request whose activities are all final."""
    states = [activity.state for activity in activities] + ["failed"] * len(creation_errors)
    state = request_state(states)
    errors = list(creation_errors)
    for activity in activities:
        errors.extend(f"activity {activity.activity_id} {activity.state}: {error}" for error in activity.errors)
        if activity.state != "completed" and not activity.errors:
            errors.append(f"activity {activity.activity_id} ended {activity.state}")
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(request_id, state),
        "event_type": f"untag.{state}",
        "request_id": request_id,
        "state": state,
        "tag_ids": list(tag_ids),
        "source_type": source_type,
        "activities": [activity.as_event() for activity in activities],
        "errors": errors,
        "metadata": metadata,
        "received_at": received_at,
        "finished_at": finished_at,
    }


def rejected_event(rejection: Rejection, *, received_at: str, finished_at: str) -> dict[str, Any]:
    """The event of a message that broke the request contract."""
    return {
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
        "original_body": rejection.original_body,
    }


def rejection_key(rejection: Rejection) -> str:
    """Distinguishes two different bad bodies sent under one request id."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, rejection.original_body))[:8]


def message_attributes(event: dict[str, Any]) -> dict[str, dict[str, str]]:
    """SNS message attributes that subscription filter policies can match on."""
    return {
        "event_type": {"DataType": "String", "StringValue": event["event_type"]},
        "state": {"DataType": "String", "StringValue": event["state"]},
    }
