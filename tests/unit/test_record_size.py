"""No request record can outgrow a DynamoDB item: the largest the caps allow, measured by AWS's size rules."""

from __future__ import annotations

import json

from tests.aws_rules.limits import item_size
from untag.activity import ActivityStatus
from untag.aws_limits import DYNAMODB_ITEM_MAX_BYTES
from untag.creation import ERROR_TEXT_MAX
from untag.dynamodb import dump
from untag.request import BODY_MAX_BYTES, read_request
from untag.result_event import finished_event

MAX_ACTIVITIES = 500  # the template's MaxActivitiesPerRequest MaxValue
AT = "2026-12-02T10:00:00Z"


def largest_request():
    """A request at the body cap needing all 500 activities (50 chunks of contacts x 10 of tags)."""
    contacts = [f"c{n:06d}" for n in range(25_000)]
    tags = [f"t{n:07d}" for n in range(500)]
    body = json.dumps(
        {
            "request_id": "r" * 128,
            "source": {"contact_ids": contacts},
            "tag_ids": tags,
            "metadata": {"pad": "m" * 4060},
        },
        separators=(",", ":"),
    )
    assert BODY_MAX_BYTES - 3_000 < len(body.encode()) <= BODY_MAX_BYTES
    request = read_request(body, "m", max_activities=MAX_ACTIVITIES)
    assert not hasattr(request, "errors"), request
    return request


def test_the_creating_record_with_every_chunk_refused_fits_in_one_item():
    request = largest_request()
    error = "activity 500 could not be created: " + "e" * ERROR_TEXT_MAX
    record = {
        "pk": "REQUEST#" + request.request_id,
        "sk": "REQUEST",
        "request_id": request.request_id,
        "status": "creating",
        "fingerprint": request.fingerprint,
        "tag_ids": list(request.tag_ids),
        "source_type": request.source_type,
        "source_ids": list(request.source_ids),
        "exclude_contact_ids": [],
        "metadata": json.dumps(request.metadata),
        "received_at": AT,
        "planned": MAX_ACTIVITIES,
        "activities": {},
        "creation_errors": {str(n): error for n in range(MAX_ACTIVITIES)},
        "lease_until": 1.0e9,
        "due": "CREATE",
        "due_at": 1.0e9,
    }
    assert item_size(dump(record)) <= DYNAMODB_ITEM_MAX_BYTES


def test_the_finished_record_with_its_event_fits_in_one_item():
    request = largest_request()
    activity_id = "0" * 36
    activities = [ActivityStatus(activity_id, "failed", 0, 500, 0, ("x" * 300,) * 21, AT, AT)] * MAX_ACTIVITIES
    event = finished_event(
        request_id=request.request_id,
        tag_ids=request.tag_ids,
        source_type=request.source_type,
        metadata=request.metadata,
        activities=activities,
        creation_errors=[],
        received_at=AT,
        finished_at=AT,
    )
    record = {
        "pk": "REQUEST#" + request.request_id,
        "sk": "REQUEST",
        "request_id": request.request_id,
        "status": "finished",
        "fingerprint": request.fingerprint,
        "tag_ids": list(request.tag_ids),
        "source_type": request.source_type,
        "metadata": json.dumps(request.metadata),
        "received_at": AT,
        "planned": MAX_ACTIVITIES,
        "activities": {str(n): activity_id for n in range(MAX_ACTIVITIES)},
        "finished_at": AT,
        "event": json.dumps(event),
        "due": "PUBLISH",
        "due_at": 1.0e9,
        "expires_at": 2_000_000_000,
    }
    assert item_size(dump(record)) <= DYNAMODB_ITEM_MAX_BYTES
