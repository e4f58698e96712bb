"""No request record can outgrow a DynamoDB item: the largest the caps allow, measured by AWS's size rules."""

from __future__ import annotations

import json

from tests.aws_rules.limits import item_size
from untag.activity import ActivityStatus
from untag.aws_limits import DYNAMODB_ITEM_MAX_BYTES
from untag.creation import ERROR_TEXT_MAX
from untag.dynamodb import dump, load
from untag.request import BODY_MAX_BYTES, read_request
from untag.result_event import finished_event
from untag.store import ActivityStore

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


class RecordingTable:
    """A DynamoDB client that keeps the items the store puts (as plain values)."""

    def __init__(self):
        self.items: list[dict] = []

    def put_item(self, **call):
        self.items.append(load(call["Item"]))
        return {}


def accepted_item(request) -> dict:
    """The request's item exactly as the store puts it when it accepts the request."""
    table = RecordingTable()
    ActivityStore(lambda: table, "ActivityTable").accept_request(
        request, received_at=AT, planned=MAX_ACTIVITIES, lease_seconds=60.0
    )
    [item] = table.items
    return item


def test_the_creating_record_with_every_chunk_refused_fits_in_one_item():
    request = largest_request()
    error = "activity 500 could not be created: " + "e" * ERROR_TEXT_MAX
    record = {**accepted_item(request), "creation_errors": {str(n): error for n in range(MAX_ACTIVITIES)}}
    assert record["source_ids"] and record["status"] == "creating"
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
    # The last chunk's activity takes the request off the creation list (its sources go), finishing stores
    # the event and drops the creation errors (they are in the event): see ActivityStore's updates.
    gone = ("source_ids", "exclude_contact_ids", "lease_until", "creation_errors")
    record = {key: value for key, value in accepted_item(request).items() if key not in gone}
    record.update(
        status="finished",
        activities={str(n): activity_id for n in range(MAX_ACTIVITIES)},
        finished_at=AT,
        event=json.dumps(event),
        due="PUBLISH",
        due_at=1.0e9,
        expires_at=2_000_000_000,
    )
    assert item_size(dump(record)) <= DYNAMODB_ITEM_MAX_BYTES
