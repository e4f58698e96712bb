"""Every result event fits in one SNS message: long lists are summarised, a long original body is cut."""

from __future__ import annotations

import hashlib
import json

from untag.activity import ActivityStatus
from untag.aws_limits import SNS_MESSAGE_MAX_BYTES
from untag.request import Rejection
from untag.result_event import LIST_SHOWN, event_bytes, finished_event, rejected_event

AT = "2026-12-02T10:00:00Z"


def test_a_rejected_event_for_a_250_kb_body_fits_and_says_what_was_cut():
    body = json.dumps({"request_id": "r-1", "source": {"contact_ids": ['x"y' * 10]}, "junk": 'é"' * 125_000})
    event = rejected_event(Rejection("r-1", ("body: too big",), body), received_at=AT, finished_at=AT)
    assert event_bytes(event) <= SNS_MESSAGE_MAX_BYTES
    assert body.startswith(event["original_body"]) and len(event["original_body"]) > 50_000
    cut = event["truncated"]["original_body"]
    assert cut["bytes"] == len(body.encode()) and cut["shown_bytes"] == len(event["original_body"].encode())
    assert cut["sha256"] == hashlib.sha256(body.encode()).hexdigest()


def test_a_small_rejected_body_is_echoed_whole():
    event = rejected_event(Rejection("r-1", ("bad",), "{}"), received_at=AT, finished_at=AT)
    assert event["original_body"] == "{}" and "truncated" not in event


def test_a_body_that_is_not_valid_unicode_is_echoed_with_escapes():
    event = rejected_event(Rejection("r-1", ("bad",), '{"x": "\ud83d"}'), received_at=AT, finished_at=AT)
    json.dumps(event, ensure_ascii=False).encode("utf-8")  # valid Unicode throughout
    assert event["original_body"] == '{"x": "\\ud83d"}'


def test_a_request_of_many_activities_lists_the_first_ones_failures_first_with_the_count():
    activities = [ActivityStatus(f"a-{n}", "completed", 100, 500, 500, ()) for n in range(499)]
    activities.insert(250, ActivityStatus("a-failed", "failed", 0, 500, 0, ("x" * 300,) * 20))
    event = finished_event(
        request_id="r",
        tag_ids=["t"],
        source_type="contact_ids",
        metadata={"k": "v" * 4000},
        activities=activities,
        creation_errors=[],
        received_at=AT,
        finished_at=AT,
    )
    assert event_bytes(event) <= SNS_MESSAGE_MAX_BYTES
    assert event["state"] == "failed"
    assert event["activities"][0]["activity_id"] == "a-failed" and len(event["activities"]) == LIST_SHOWN
    assert event["truncated"]["activities"] == {"count": 500, "shown": LIST_SHOWN}


def test_many_creation_errors_are_summarised():
    errors = [f"activity {n} could not be created: " + "e" * 200 for n in range(500)]
    event = finished_event(
        request_id="r",
        tag_ids=["t"] * 1,
        source_type="list_ids",
        metadata=None,
        activities=[],
        creation_errors=errors,
        received_at=AT,
        finished_at=AT,
    )
    assert event["errors"] == errors[:LIST_SHOWN]
    assert event["truncated"] == {"errors": {"count": 500, "shown": LIST_SHOWN}}
    assert event_bytes(event) <= SNS_MESSAGE_MAX_BYTES


def test_a_rejected_event_with_a_huge_tag_list_and_body_still_fits():
    tags = tuple(f"t-{n:060d}" for n in range(9000))  # 600 KB of tag ids
    event = rejected_event(
        Rejection("r", ("tag_ids: too many",), "x" * 300_000, tag_ids=tags), received_at=AT, finished_at=AT
    )
    assert event_bytes(event) <= SNS_MESSAGE_MAX_BYTES
    assert event["truncated"]["tag_ids"]["count"] == 9000


def crowded_preview() -> dict:
    """A preview naming 500 tags of 255 characters and 100 long addresses that do not resolve: the caps allow
    it, each character takes 6 bytes in JSON when not ASCII, and a preview holds what did not resolve twice."""
    from untag.records import RequestRecord, RequestStatus, Resolution
    from untag.result_event import previewed_event

    names = tuple(f"{n:03d}" + "é" * 252 for n in range(500))
    emails = tuple(f"{n:03d}" + "ü" * 240 + "@example.com" for n in range(100))
    resolution = Resolution(0, 0, names, 5000, emails)
    record = RequestRecord("r-1", RequestStatus.RESOLVING, "f", (), "emails", AT, tag_names=names)
    return previewed_event(
        record,
        tag_ids=["t" * 64] * 500,
        activities=0,
        contacts=0,
        resolution=resolution,
        unresolved=resolution.unresolved(),
        finished_at=AT,
    )


def test_a_preview_naming_500_long_unicode_tags_and_100_long_addresses_fits_and_says_what_was_cut():
    from tests.contract.test_schemas import RESULT_EVENT

    event = crowded_preview()

    assert event_bytes(event) <= SNS_MESSAGE_MAX_BYTES  # SNS refuses a message over 256 KiB
    assert event["truncated"]["unresolved.tag_names"]["count"] == 500
    names = event["unresolved"]["tag_names"]
    assert names and names == [f"{n:03d}" + "é" * 252 for n in range(len(names))]
    assert event["unresolved"]["emails"]["count"] == 5000  # the count stays whole
    RESULT_EVENT.validate(event)  # the summary is one the result-event schema describes
