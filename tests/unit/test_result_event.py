"""Unit tests of activity states, the request rollup and the result event (contracts.md section 2)."""

import pytest

from untag.activity import ActivityStatus, request_state
from untag.request import read_request
from untag.result_event import finished_event, message_attributes, rejected_event


@pytest.mark.parametrize(
    "states, expected",
    [
        (["completed"], "completed"),
        (["completed", "completed"], "completed"),
        (["completed", "cancelled"], "cancelled"),
        (["cancelled", "timed_out"], "timed_out"),
        (["timed_out", "failed", "cancelled"], "failed"),
        ([], "failed"),
    ],
)
def test_a_request_is_completed_only_if_every_activity_completed(states, expected):
    assert request_state(states) == expected


def test_rollup_refuses_unfinished_activities():
    with pytest.raises(ValueError):
        request_state(["completed", "processing"])


def test_api_activity_is_read_tolerantly():
    status = ActivityStatus.from_api(
        {
            "activity_id": "a1",
            "state": "failed",
            "percent_done": 100,
            "status": {"items_total_count": 3, "items_completed_count": 2},
            "activity_errors": ["bad contact", {"message": "object form"}],
            "created_at": "2026-01-01T00:00:00Z",
        }
    )
    assert status.errors == ("bad contact", "object form") and status.items_total_count == 3
    assert ActivityStatus.from_api({"activity_id": "a2", "state": "time_out", "status": {}}).state == "timed_out"
    assert ActivityStatus.from_api({"state": "initialized"}, "a3").activity_id == "a3"


def _event(states, creation_errors=()):
    activities = [
        ActivityStatus(f"a{n}", state, 100, 2, 2 if state == "completed" else 1) for n, state in enumerate(states)
    ]
    return finished_event(
        request_id="r-1",
        tag_ids=["t1"],
        source_type="contact_ids",
        metadata={"k": [1]},
        activities=activities,
        creation_errors=list(creation_errors),
        received_at="2026-11-26T10:00:00Z",
        finished_at="2026-11-26T10:03:10Z",
    )


def test_finished_event_has_the_contract_shape():
    event = _event(["completed"])
    assert set(event) == {
        "schema_version",
        "event_id",
        "event_type",
        "request_id",
        "state",
        "tag_ids",
        "source_type",
        "activities",
        "errors",
        "metadata",
        "received_at",
        "finished_at",
    }
    assert event["event_type"] == "untag.completed" and event["errors"] == []
    assert event["activities"][0] == {
        "activity_id": "a0",
        "state": "completed",
        "percent_done": 100,
        "items_total_count": 2,
        "items_completed_count": 2,
        "errors": [],
        "created_at": None,
        "completed_at": None,
    }
    assert message_attributes(event) == {
        "event_type": {"DataType": "String", "StringValue": "untag.completed"},
        "state": {"DataType": "String", "StringValue": "completed"},
    }


def test_event_id_is_deterministic_per_outcome():
    assert _event(["completed"])["event_id"] == _event(["completed"])["event_id"]
    assert _event(["completed"])["event_id"] != _event(["failed"])["event_id"]


def test_a_chunk_constant_contact_refused_fails_the_request_and_says_why():
    event = _event(["completed"], ["activity 2 could not be created: 400"])
    assert event["state"] == "failed" and event["errors"] == ["activity 2 could not be created: 400"]


def test_rejected_event_carries_errors_and_the_original_body():
    body = '{"source": {}, "tag_ids": ["t1"]}'
    event = rejected_event(read_request(body, "m-1"), received_at="x", finished_at="y")
    assert event["state"] == "rejected" and event["event_type"] == "untag.rejected"
    assert event["original_body"] == body and event["activities"] == [] and event["errors"]
    assert event["request_id"] == "m-1" and event["source_type"] is None and event["metadata"] is None
    assert event["tag_ids"] == ["t1"]
