"""The published JSON Schemas (events/schemas/) and the sample events (events/) agree with the service.

- Both schemas are valid draft 2020-12, versioned (``$id``, ``schema_version`` "1") and describe every field.
- Every valid sample request validates against the request schema, every invalid one does not, and
  the schema accepts exactly what the service's own reader (``untag.request.read_request``) accepts
  on a set of edge cases, wherever JSON Schema can express the rule.
- Every event the service publishes in an end-to-end run validates against the result-event schema.
- The samples are what events/generate.py generates, and each entry-point sample is accepted by the
  intake function as it is (the way `sam local invoke -e` would send it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from untag.names import EMAIL_PATTERN
from untag.request import Rejection, UntagRequest, read_request
from untag.result_event import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = ROOT / "events"
SCHEMAS_DIR = EVENTS_DIR / "schemas"


def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS_DIR / name).read_text(encoding="utf-8"))


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


REQUEST = validator("untag-request.schema.json")
RESULT_EVENT = validator("result-event.schema.json")


def sample_records() -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(file, index, record) of every SQS record in the sample events."""
    for path in sorted(EVENTS_DIR.glob("*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        for index, record in enumerate(event.get("Records", ())):
            yield path.name, index, record


def unwrap(document: Any) -> Any:
    """The request inside an EventBridge event or an SNS notification (contract section 1, envelopes)."""
    if isinstance(document, dict) and "detail" in document and "detail-type" in document:
        return document["detail"]
    if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
        return json.loads(document["Message"])
    return document


def errors_of(document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in REQUEST.iter_errors(document)
    ]


# --- the schemas themselves -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["untag-request.schema.json", "result-event.schema.json"])
def test_the_schemas_are_valid_versioned_and_describe_every_field(name):
    schema = load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{SCHEMA_VERSION}.json")
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert schema["description"]

    def described(subschema: dict[str, Any]) -> bool:
        if "description" in subschema:
            return True
        reference = subschema.get("$ref", "")
        return reference.startswith("#/$defs/") and "description" in schema["$defs"][reference.split("/")[-1]]

    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            for field, subschema in (node.get("properties") or {}).items():
                if not described(subschema):
                    yield f"{where}.{field}"
            for key, value in node.items():
                yield from walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{where}[{index}]")

    # Fields are declared (with their description) in `properties` and `$defs`; the `allOf` rules
    # only narrow them, so they need none.
    declarations = {key: value for key, value in schema.items() if key != "allOf"}
    assert list(walk(declarations, "$")) == []


def test_the_result_event_schema_names_every_field_the_service_sets():
    from untag.activity import ActivityStatus
    from untag.request import Rejection
    from untag.result_event import finished_event, rejected_event

    schema = load("result-event.schema.json")
    activity = ActivityStatus("a-1", "completed", 100, 1, 1, (), "2026-11-26T10:00:01Z", "2026-11-26T10:00:02Z")
    finished = finished_event(
        request_id="r-1",
        tag_ids=["t-1"],
        source_type="contact_ids",
        metadata=None,
        activities=[activity],
        creation_errors=[],
        received_at="2026-11-26T10:00:00Z",
        finished_at="2026-11-26T10:01:00Z",
    )
    rejected = rejected_event(
        Rejection("r-2", ("source: required",), "{}"),
        received_at="2026-11-26T10:00:00Z",
        finished_at="2026-11-26T10:00:00Z",
    )
    summarised = rejected_event(
        Rejection("r-3", ("bad",) * 150, "x" * 300_000),
        received_at="2026-11-26T10:00:00Z",
        finished_at="2026-11-26T10:00:00Z",
    )
    many = finished_event(
        request_id="r-4",
        tag_ids=["t-1"],
        source_type="contact_ids",
        metadata=None,
        activities=[activity] * 150,
        creation_errors=[],
        received_at="2026-11-26T10:00:00Z",
        finished_at="2026-11-26T10:01:00Z",
    )
    named = section_4_events()
    assert set(finished) | set(rejected) | set(summarised) | set(named["previewed"]) == set(schema["properties"])
    assert set(named["previewed"]["preview"]) == set(schema["properties"]["preview"]["properties"])
    assert set(named["previewed"]["resolved"]) == set(schema["properties"]["resolved"]["properties"])
    unresolved = named["failed, nothing resolved"]["unresolved"]
    assert set(unresolved) == set(schema["$defs"]["unresolved"]["properties"])
    assert set(unresolved["emails"]) == set(schema["$defs"]["unresolved"]["properties"]["emails"]["properties"])
    huge = rejected_event(
        Rejection("r-5", ("bad",), "x" * 300_000, tag_ids=tuple(f"t-{n:060d}" for n in range(9000))),
        received_at="2026-11-26T10:00:00Z",
        finished_at="2026-11-26T10:00:00Z",
    )
    from tests.unit.test_result_event_size import crowded_preview

    crowded = crowded_preview()
    assert set(summarised["truncated"]) | set(many["truncated"]) | set(huge["truncated"]) | set(
        crowded["truncated"]
    ) == set(schema["properties"]["truncated"]["properties"])
    assert set(activity.as_event()) == set(schema["$defs"]["activity"]["properties"])
    for event in (finished, rejected, summarised, many, huge, crowded):
        assert list(RESULT_EVENT.iter_errors(event)) == []


@pytest.mark.parametrize(
    "change, broken",
    [
        ({"event_type": "untag.failed"}, "event_type does not match state"),
        ({"schema_version": "2"}, "another schema version"),
        ({"unexpected": 1}, "an undocumented field"),
        ({"state": "rejected", "event_type": "untag.rejected"}, "rejected without its original body"),
        ({"original_body": "{}"}, "an original body on an accepted request"),
        ({"activities": []}, "completed without activities"),
        ({"received_at": "2026-11-26 10:00:00"}, "a timestamp that is not ISO-8601 UTC"),
        ({"event_id": "not-a-uuid"}, "an event id that is not a UUID"),
    ],
)
def test_the_result_event_schema_refuses_broken_events(change, broken):
    from untag.activity import ActivityStatus
    from untag.result_event import finished_event

    event = finished_event(
        request_id="r-1",
        tag_ids=["t-1"],
        source_type="contact_ids",
        metadata={"a": 1},
        activities=[ActivityStatus("a-1", "completed", 100)],
        creation_errors=[],
        received_at="2026-11-26T10:00:00Z",
        finished_at="2026-11-26T10:01:00Z",
    )
    assert RESULT_EVENT.is_valid(event)
    assert not RESULT_EVENT.is_valid(event | change), broken


COMPLETED_ACTIVITY = {
    "activity_id": "a-1",
    "state": "completed",
    "percent_done": 100,
    "items_total_count": 1,
    "items_completed_count": 1,
    "errors": [],
    "created_at": "2026-12-02T10:00:01Z",
    "completed_at": "2026-12-02T10:00:02Z",
}


def section_4_events() -> dict[str, dict[str, Any]]:
    """Events of requests that named tags or contacts, or asked for a preview (contract section 4), made by the
    service's own functions."""
    from untag.activity import ActivityStatus
    from untag.records import RequestRecord, RequestStatus, Resolution
    from untag.result_event import finished_event, previewed_event

    times = {"received_at": "2026-12-02T10:00:00Z", "finished_at": "2026-12-02T10:00:05Z"}
    record = RequestRecord(
        "crm-preview-1", RequestStatus.RESOLVING, "f" * 32, (), "emails", times["received_at"], dry_run=True
    )
    some_unresolved = Resolution(
        contacts=2,
        tags=1,
        unresolved_tag_names=("No Such Tag",),
        unresolved_emails=150,
        unresolved_emails_first=tuple(f"ghost{n}@example.com" for n in range(100)),
    )
    preview = previewed_event(
        record,
        tag_ids=["t-churn", "t-vip"],
        activities=1,
        contacts=2,
        resolution=some_unresolved,
        unresolved=some_unresolved.unresolved(),
        finished_at=times["finished_at"],
    )
    plain_preview = previewed_event(  # a dry run without names: no resolved / unresolved, nothing to count
        RequestRecord("crm-preview-2", RequestStatus.RESOLVING, "f" * 32, (), "new_subscriber", times["received_at"]),
        tag_ids=["t-1"],
        activities=1,
        contacts=None,
        resolution=None,
        unresolved=Resolution().unresolved(),
        finished_at=times["finished_at"],
    )
    no_tag = finished_event(
        request_id="crm-names-1",
        tag_ids=[],
        source_type="contact_ids",
        metadata=None,
        activities=[],
        creation_errors=["no tag resolved: none of the 1 tag names matches a Constant Contact tag, and no tag_ids"],
        resolution=Resolution(unresolved_tag_names=("No Such Tag",)),
        **times,
    )
    no_contact = finished_event(
        request_id="crm-names-2",
        tag_ids=["t-1"],
        source_type="emails",
        metadata={"origin": "crm"},
        activities=[],
        creation_errors=["no contact resolved: none of the 1 e-mail addresses matches a Constant Contact contact"],
        resolution=Resolution(unresolved_emails=1, unresolved_emails_first=("ghost@example.com",)),
        **times,
    )
    completed = finished_event(
        request_id="crm-names-3",
        tag_ids=["t-given", "t-churn"],
        source_type="emails",
        metadata=None,
        activities=[ActivityStatus("a-1", "completed", 100, 2, 2, (), times["received_at"], times["finished_at"])],
        creation_errors=[],
        resolution=Resolution(contacts=2, tags=1),
        **times,
    )
    return {
        "previewed": preview,
        "previewed, no names": plain_preview,
        "failed, nothing resolved": no_tag,
        "failed, no address resolved": no_contact,
        "completed, everything resolved": completed,
    }


@pytest.mark.parametrize("name", list(section_4_events()))
def test_the_result_event_schema_accepts_the_events_of_names_addresses_and_previews(name):
    event = section_4_events()[name]
    assert [error.message for error in RESULT_EVENT.iter_errors(event)] == []


def _unresolved(**changes: Any) -> dict[str, Any]:
    unresolved = {"tag_names": [], "emails": {"count": 0, "first": []}}
    return unresolved | changes


@pytest.mark.parametrize(
    "name, change, broken",
    [
        ("previewed", {"event_type": "untag.completed"}, "event_type does not match previewed"),
        ("previewed", {"activities": [COMPLETED_ACTIVITY]}, "a preview that created an activity"),
        ("previewed", {"errors": ["boom"]}, "a preview with errors"),
        ("previewed", {"preview": None}, "previewed without its preview"),
        ("previewed", {"preview": {"activities": 1, "contacts": 2}}, "a preview without its unresolved"),
        ("previewed", {"preview": {"activities": -1, "contacts": 2, "unresolved": _unresolved()}}, "-1 activities"),
        ("previewed", {"preview": {"activities": 1, "contacts": "2", "unresolved": _unresolved()}}, "a string count"),
        ("previewed", {"preview": {"activities": 1, "contacts": -3, "unresolved": _unresolved()}}, "-3 contacts"),
        ("previewed", {"resolved": {"contacts": 2}}, "resolved without tags"),
        ("previewed", {"resolved": {"contacts": 2, "tags": 1.5}}, "resolved tags not an integer"),
        ("previewed", {"unresolved": _unresolved(emails={"count": -1, "first": []})}, "a negative count"),
        ("previewed", {"unresolved": _unresolved(emails={"count": 101, "first": ["a@b.co"] * 101})}, "101 first"),
        ("previewed", {"unresolved": _unresolved(emails={"first": []})}, "unresolved emails without a count"),
        ("previewed", {"unresolved": {"tag_names": []}}, "unresolved without emails"),
        ("previewed", {"unresolved": _unresolved(tag_names=[""])}, "an empty unresolved tag name"),
        ("previewed", {"unresolved": _unresolved(extra=1)}, "an undocumented unresolved field"),
        ("previewed", {"state": "completed", "event_type": "untag.completed"}, "a dry run reported as completed"),
        ("previewed", {"source_type": "segment_ids"}, "an unknown source type"),
        ("failed, nothing resolved", {"resolved": None}, "unresolved without resolved"),
        ("failed, nothing resolved", {"unresolved": None}, "no tag, and no unresolved names"),
        ("failed, nothing resolved", {"unresolved": _unresolved()}, "no tag, yet every name resolved"),
        ("failed, nothing resolved", {"state": "completed", "event_type": "untag.completed"}, "completed, no tag"),
        ("failed, no address resolved", {"resolved": None, "unresolved": None}, "emails, without resolution"),
        ("completed, everything resolved", {"tag_ids": []}, "completed with no tag"),
        (
            "completed, everything resolved",
            {"preview": {"activities": 1, "contacts": 2, "unresolved": _unresolved()}},
            "preview on a completed event",
        ),
    ],
)
def test_the_result_event_schema_refuses_broken_section_4_events(name, change, broken):
    event = section_4_events()[name]
    assert RESULT_EVENT.is_valid(event)
    changed = {key: value for key, value in (event | change).items() if value is not None or key not in change}
    assert not RESULT_EVENT.is_valid(changed), broken


def test_a_rejected_event_carries_no_resolution():
    from untag.result_event import rejected_event

    rejected = rejected_event(
        Rejection("r-1", ("source.emails: invalid e-mail addresses at positions 0",), "{}", source_type="emails"),
        received_at="2026-12-02T10:00:00Z",
        finished_at="2026-12-02T10:00:00Z",
    )
    assert RESULT_EVENT.is_valid(rejected)  # an emails source, rejected: nothing was resolved
    resolution = {"resolved": {"contacts": 0, "tags": 0}, "unresolved": _unresolved()}
    assert not RESULT_EVENT.is_valid(rejected | resolution)
    assert not RESULT_EVENT.is_valid(rejected | {"tag_ids": []})


# --- requests: the samples and the service agree with the schema ------------------------------------------


def test_every_sample_request_is_judged_by_the_schema_as_the_service_judges_it():
    checked = {"valid": 0, "invalid": 0}
    for file_name, index, record in sample_records():
        where = f"{file_name} record {index}"
        outcome = read_request(record["body"], record["messageId"])
        try:
            request = unwrap(json.loads(record["body"]))
        except ValueError:
            assert isinstance(outcome, Rejection), where  # not JSON: nothing a schema can look at
            continue
        if isinstance(outcome, UntagRequest):
            assert errors_of(request) == [], where
            checked["valid"] += 1
        else:
            assert errors_of(request) != [], f"{where}: the schema accepts what the service rejects: {outcome.errors}"
            checked["invalid"] += 1
    assert checked["valid"] >= 12 and checked["invalid"] >= 10, checked


ID_64 = "c" * 64
EDGE_CASES = [
    # (request, why) - the schema must accept exactly when the service does
    ({"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]}, "minimal"),
    ({"source": {"contact_ids": ["c-1", "c-1"]}, "tag_ids": ["t-1", "t-1"]}, "duplicates are removed, not errors"),
    ({"source": {"contact_ids": [ID_64]}, "tag_ids": ["t-1"]}, "a 64-character id"),
    ({"source": {"contact_ids": [ID_64 + "c"]}, "tag_ids": ["t-1"]}, "a 65-character id"),
    ({"source": {"contact_ids": ["c_1"]}, "tag_ids": ["t-1"]}, "an underscore in an id"),
    ({"source": {"contact_ids": [1]}, "tag_ids": ["t-1"]}, "a number as an id"),
    ({"source": {"contact_ids": []}, "tag_ids": ["t-1"]}, "an empty source array"),
    ({"source": {}, "tag_ids": ["t-1"]}, "an empty source"),
    ({"source": {"segment_ids": ["s-1"]}, "tag_ids": ["t-1"]}, "an unknown source"),
    ({"source": {"list_ids": ["l-1"]}, "tag_ids": "t-1"}, "tag_ids not an array"),
    ({"source": {"all_active_contacts": True}, "tag_ids": ["t-1"]}, "a flag source"),
    ({"source": {"all_active_contacts": "true"}, "tag_ids": ["t-1"]}, "tolerated: the string true"),
    ({"source": {"new_subscriber": " TRUE "}, "tag_ids": ["t-1"]}, "tolerated: any case, spaces"),
    ({"source": {"new_subscriber": "yes"}, "tag_ids": ["t-1"]}, "another string"),
    ({"source": {"all_active_contacts": 1}, "tag_ids": ["t-1"]}, "a number as a flag"),
    ({"source": {"all_active_contacts": True}, "exclude": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]}, "exclude"),
    ({"source": {"list_ids": ["l-1"], "exclude": ["c-1"]}, "tag_ids": ["t-1"]}, "tolerated: exclude in source"),
    ({"source": {"list_ids": ["l-1"], "exclude": {"contact_ids": ["c-1"]}}, "tag_ids": ["t-1"]}, "nested object"),
    (
        {"source": {"list_ids": ["l-1"], "exclude": ["c-1"]}, "exclude": {"contact_ids": ["c-2"]}, "tag_ids": ["t-1"]},
        "exclude given twice",
    ),
    ({"source": {"tag_ids": ["t-2"]}, "exclude": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]}, "exclude with tags"),
    ({"source": {"new_subscriber": True, "exclude": ["c-1"]}, "tag_ids": ["t-1"]}, "nested exclude, new subscribers"),
    ({"source": {"contact_ids": ["c-1"]}, "exclude": {"contact_ids": []}, "tag_ids": ["t-1"]}, "an empty exclude"),
    ({"source": {"list_ids": ["l-1"]}, "exclude": {"list_ids": ["l-2"]}, "tag_ids": ["t-1"]}, "exclude lists"),
    ({"source": {"list_ids": ["l-1"]}, "exclude": ["c-1"], "tag_ids": ["t-1"]}, "a top-level bare exclude"),
    ({"request_id": "a.b_c:d-1", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "every request id character"),
    ({"request_id": "a/b", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "a slash in the request id"),
    ({"request_id": "", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "an empty request id"),
    ({"request_id": "r" * 128, "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "a 128-character request id"),
    ({"request_id": 42, "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "a number as request id"),
    ({"schema_version": "1", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "schema_version 1"),
    ({"schema_version": "2", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "schema_version 2"),
    ({"metdata": {}, "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "a misspelt field"),
    ({"metadata": {"a": [1, {"b": None}]}, "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "any metadata"),
    ({"metadata": "crm", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}, "metadata not an object"),
    (["c-1"], "not an object"),
    # contract section 4: tags by name, contacts by e-mail address, previews
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": ["churned-2026"]}, "tag names only"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": ["vip"], "tag_ids": ["t-1"]}, "tag names and tag ids"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": ["vip"], "tag_ids": []}, "empty tag_ids with tag names"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": [], "tag_ids": ["t-1"]}, "empty tag_names with tag ids"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": []}, "empty tag_names and no tag_ids"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": [], "tag_ids": []}, "empty tag_names and empty tag_ids"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": ["   "]}, "a tag name of spaces only"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": ["\u00a0\u3000\x1c"]}, "a tag name of Unicode spaces only"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": [""]}, "an empty tag name"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": [" VIP "]}, "a tag name with spaces around it"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": ["n" * 255]}, "a 255-character tag name"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": ["n" * 256]}, "a 256-character tag name"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": [" " + "n" * 255]}, "256 characters before trimming"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": [7]}, "a number as a tag name"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": "vip"}, "tag_names not an array"),
    ({"source": {"contact_ids": ["c-1"]}, "tag_names": [f"n{n}" for n in range(501)]}, "501 tag names"),
    ({"source": {"emails": ["Ana@Example.com ", "bo@example.com"]}, "tag_ids": ["t-1"]}, "an emails source"),
    ({"source": {"emails": ["\u00a0ana@example.com\n"]}, "tag_ids": ["t-1"]}, "an address in Unicode spaces"),
    ({"source": {"emails": ["ana@example"]}, "tag_ids": ["t-1"]}, "an address without a dot in its domain"),
    ({"source": {"emails": ["ana@@example.com"]}, "tag_ids": ["t-1"]}, "an address with two @"),
    ({"source": {"emails": ["ana maria@example.com"]}, "tag_ids": ["t-1"]}, "an address with a space inside"),
    ({"source": {"emails": ["ana@example..com"]}, "tag_ids": ["t-1"]}, "an address with an empty domain label"),
    ({"source": {"emails": ["a" * 242 + "@example.com"]}, "tag_ids": ["t-1"]}, "a 254-character address"),
    ({"source": {"emails": ["a" * 243 + "@example.com"]}, "tag_ids": ["t-1"]}, "a 255-character address"),
    ({"source": {"emails": [" " * 250 + "a@b.co"]}, "tag_ids": ["t-1"]}, "255 characters before trimming"),
    ({"source": {"emails": []}, "tag_ids": ["t-1"]}, "an empty emails source"),
    ({"source": {"emails": "ana@example.com"}, "tag_ids": ["t-1"]}, "emails not an array"),
    ({"source": {"emails": ["ana@example.com"], "contact_ids": ["c-1"]}, "tag_ids": ["t-1"]}, "emails and contact ids"),
    (
        {"source": {"list_ids": ["l-1"]}, "exclude": {"emails": ["ana@example.com"]}, "tag_ids": ["t-1"]},
        "exclude emails",
    ),
    (
        {
            "source": {"all_active_contacts": True},
            "exclude": {"emails": ["ana@example.com"], "contact_ids": ["c-9"]},
            "tag_ids": ["t-1"],
        },
        "exclude emails and contact ids, all active contacts",
    ),
    (
        {"source": {"list_ids": ["l-1"], "exclude": {"emails": ["ana@example.com"]}}, "tag_ids": ["t-1"]},
        "tolerated: exclude emails in source",
    ),
    ({"source": {"list_ids": ["l-1"]}, "exclude": {"emails": ["ana@"]}, "tag_ids": ["t-1"]}, "exclude a bad address"),
    (
        {"source": {"contact_ids": ["c-1"]}, "exclude": {"emails": ["ana@example.com"]}, "tag_ids": ["t-1"]},
        "exclude emails with a contact_ids source",
    ),
    (
        {"source": {"emails": ["bo@example.com"]}, "exclude": {"emails": ["ana@example.com"]}, "tag_ids": ["t-1"]},
        "exclude emails with an emails source",
    ),
    (
        {"source": {"emails": ["bo@example.com"], "exclude": ["c-1"]}, "tag_ids": ["t-1"]},
        "nested exclude with an emails source",
    ),
    (
        {"source": {"tag_ids": ["t-2"], "exclude": {"emails": ["ana@example.com"]}}, "tag_ids": ["t-1"]},
        "nested exclude emails with a tag source",
    ),
    ({"source": {"emails": ["bo@example.com"]}, "exclude": {"emails": []}, "tag_ids": ["t-1"]}, "empty exclude emails"),
    ({"source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"], "dry_run": True}, "dry_run true"),
    ({"source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"], "dry_run": False}, "dry_run false"),
    ({"source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"], "dry_run": "true"}, "dry_run the string true"),
    ({"source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"], "dry_run": 1}, "dry_run 1"),
]


@pytest.mark.parametrize("request_body, why", EDGE_CASES, ids=[why for _, why in EDGE_CASES])
def test_the_schema_accepts_exactly_what_the_service_accepts(request_body, why):
    service_accepts = isinstance(read_request(json.dumps(request_body), "m-1"), UntagRequest)
    assert (errors_of(request_body) == []) == service_accepts, errors_of(request_body)


def test_the_white_space_the_schema_spells_out_is_what_the_service_trims():
    """Tag names and addresses are trimmed with str.strip(); the schema lists those characters explicitly
    (ECMA-262's `\\s` is another set), so that validators in every language judge names and addresses alike."""
    pattern = re.compile(load("untag-request.schema.json")["$defs"]["tag_name"]["pattern"])
    characters = (chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF)
    assert [c for c in characters if bool(pattern.search(c)) == c.isspace()] == []
    space = pattern.pattern[2:-1]
    service = EMAIL_PATTERN.pattern.replace("\\s", space)  # the address once trimmed, as the service matches it
    assert load("untag-request.schema.json")["$defs"]["email"]["pattern"] == f"^[{space}]*{service}[{space}]*$"


def test_the_service_checks_what_the_schema_cannot_express():
    """Documented in the schema's description: the 4 KB metadata limit, and the 500 tags that `tag_ids` and
    `tag_names` name together (JSON Schema cannot add two arrays' lengths), are checked by the service only."""
    body = {"source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"], "metadata": {"blob": "x" * 5000}}
    assert errors_of(body) == []
    assert isinstance(read_request(json.dumps(body), "m-1"), Rejection)
    assert "4 KB" in load("untag-request.schema.json")["properties"]["metadata"]["description"]

    tags = {"tag_ids": [f"t-{n}" for n in range(300)], "tag_names": [f"name {n}" for n in range(201)]}
    body = {"source": {"list_ids": ["l-1"]}, **tags}  # 501 tags: each array alone is within its cap
    assert errors_of(body) == []
    rejection = read_request(json.dumps(body), "m-1")
    assert isinstance(rejection, Rejection) and "more than the cap of 500 tags" in rejection.errors[0]
    body["tag_names"] = body["tag_names"][:200]
    assert isinstance(read_request(json.dumps(body), "m-1"), UntagRequest)
    description = load("untag-request.schema.json")["description"]
    assert "`tag_ids` and `tag_names` together name at most 500 tags" in description


# --- result events: everything the service publishes validates ----------------------------------------------


def test_every_published_event_validates_against_the_result_event_schema(pipeline, simulator):
    bodies = [
        record["body"]
        for name in ("intake-sqs-batch.json", "intake-invalid.json")
        for record in json.loads((EVENTS_DIR / name).read_text())["Records"]
    ]
    simulator.set_outcome("t-cyber-monday", "failed")  # one more outcome than completed and rejected
    pipeline.submit(bodies)
    assert pipeline.run_until_settled(len(bodies), timeout=45)
    events = [{key: value for key, value in event.items() if key != "_attributes"} for event in pipeline.results]
    assert len({event["request_id"] for event in events}) == len(bodies)
    for event in events:
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in RESULT_EVENT.iter_errors(event)]
        assert problems == [], (event["request_id"], problems)
    assert {event["state"] for event in events} == {"completed", "failed", "rejected"}


def test_every_event_of_the_names_sample_validates_against_the_result_event_schema():
    """The section-4 sample batch (tags by name, contacts by address, previews), run through the use cases on
    the in-memory fakes against the sample account (devkit.sample_account; the simulator serves no tags or
    contact lookups yet): every event published validates."""
    from devkit.sample_account import CONTACTS, TAGS
    from tests.unit.fakes import Services, budget
    from untag.intake import Message, accept_batch
    from untag.poller import poll

    services = Services()
    api = services.constant_contact
    api.tags = dict(TAGS)
    for email, (contact_id, _lists, _tags) in CONTACTS.items():
        api.add_contact(email, contact_id)
    records = json.loads((EVENTS_DIR / "intake-names-and-emails.json").read_text())["Records"]
    no_tag = {"request_id": "crm-names-no-tag", "source": {"contact_ids": ["c-1"]}, "tag_names": ["No Such Tag"]}
    bodies = [record["body"] for record in records] + [json.dumps(no_tag)]
    messages = [Message(f"m-{n}", body, sent_at=services.clock()) for n, body in enumerate(bodies)]
    assert accept_batch(messages, services, budget(services)) == set()
    for _ in range(3):
        for activity_id in api.states:
            api.states[activity_id] = "completed"
        services.clock.advance(60)
        poll(services, budget(services))

    events = {event["request_id"]: event for event in services.publisher.events}
    assert len(events) == len(bodies)
    for request_id, event in events.items():
        assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in RESULT_EVENT.iter_errors(event)] == [], (
            request_id
        )
    assert {event["state"] for event in events.values()} == {"completed", "failed", "previewed"}
    assert events["crm-names-no-tag"]["tag_ids"] == []  # the one event with no tag at all
    assert events["crm-preview-2026-12-02-4"]["preview"]["unresolved"]["emails"] == {
        "count": 1,
        "first": ["ghost@example.com"],
    }


# --- the sample events ------------------------------------------------------------------------------------


def test_the_samples_are_what_generate_py_generates():
    answer = subprocess.run(
        [sys.executable, str(EVENTS_DIR / "generate.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert answer.returncode == 0, answer.stderr


def test_there_is_a_sample_for_every_entry_point_and_envelope():
    names = {path.name for path in EVENTS_DIR.glob("*.json")}
    assert {
        "intake-sqs-batch.json",
        "intake-invalid.json",
        "intake-eventbridge-envelope.json",
        "intake-sns-envelope.json",
        "intake-redriven.json",
        "poller-scheduled.json",
    } <= names


@pytest.mark.parametrize(
    "file_name, request_id",
    [
        ("intake-eventbridge-envelope.json", lambda body, record: body["id"]),
        ("intake-sns-envelope.json", lambda body, record: json.loads(body["Message"])["request_id"]),
        ("intake-redriven.json", lambda body, record: record["messageAttributes"]["request_id"]["stringValue"]),
    ],
)
def test_each_envelope_sample_is_accepted_by_the_intake_as_it_is(pipeline, file_name, request_id):
    from devkit.pipeline import LambdaContext

    event = json.loads((EVENTS_DIR / file_name).read_text())
    [record] = event["Records"]
    response = pipeline.intake(event, LambdaContext("untag-intake", pipeline.intake_timeout))
    assert response == {"batchItemFailures": []}
    assert pipeline.run_until_settled(1, timeout=20)
    [result] = pipeline.results
    assert result["request_id"] == request_id(json.loads(record["body"]), record)
    assert result["state"] == "completed", result
    assert result["received_at"] == "2026-11-26T10:00:00Z"  # the sample's SentTimestamp


def test_the_poller_sample_runs_the_poller(pipeline):
    from devkit.pipeline import LambdaContext

    event = json.loads((EVENTS_DIR / "poller-scheduled.json").read_text())
    pipeline.poller(event, LambdaContext("untag-poller", pipeline.poller_timeout))
