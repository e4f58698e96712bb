"""Unit tests of the request contract (contracts.md section 1): normalisation, validation, envelopes, splitting."""

import json

import pytest

from untag.request import Rejection, UntagRequest, can_share_activities, plan_activities, read_request


def read(body) -> UntagRequest | Rejection:
    return read_request(body if isinstance(body, str) else json.dumps(body), "sqs-message-1")


def valid(body) -> UntagRequest:
    outcome = read(body)
    assert isinstance(outcome, UntagRequest), getattr(outcome, "errors", outcome)
    return outcome


def errors_of(body) -> list[str]:
    outcome = read(body)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.errors, "a rejection always says why"
    return list(outcome.errors)


BASE = {"source": {"contact_ids": ["c1", "c2"]}, "tag_ids": ["t1"]}


@pytest.mark.parametrize(
    "source, source_type, ids",
    [
        ({"contact_ids": ["c1", "c2"]}, "contact_ids", ("c1", "c2")),
        ({"list_ids": ["L1"]}, "list_ids", ("L1",)),
        ({"tag_ids": ["T9"]}, "tag_ids", ("T9",)),
        ({"all_active_contacts": True}, "all_active_contacts", ()),
        ({"new_subscriber": True}, "new_subscriber", ()),
    ],
)
def test_every_source_type_is_accepted(source, source_type, ids):
    request = valid({"request_id": "r-1", "source": source, "tag_ids": ["t1"]})
    assert (request.request_id, request.source_type, request.source_ids) == ("r-1", source_type, ids)


def test_string_true_and_exclude_inside_source_are_normalised():
    # Given the variant Constant Contact's own guide uses
    request = valid({"source": {"all_active_contacts": "true", "exclude": ["c9", "c9"]}, "tag_ids": ["t1"]})
    # Then it is the canonical request
    assert request.source_type == "all_active_contacts"
    assert request.exclude_contact_ids == ("c9",)
    assert plan_activities(request)[0].body == {
        "source": {"all_active_contacts": True},
        "exclude": {"contact_ids": ["c9"]},
        "tag_ids": ["t1"],
    }


def test_duplicates_are_removed_keeping_order():
    request = valid({"source": {"contact_ids": ["b", "a", "b"]}, "tag_ids": ["t2", "t1", "t2"]})
    assert request.source_ids == ("b", "a") and request.tag_ids == ("t2", "t1")


def test_request_id_falls_back_to_the_sqs_message_id():
    assert valid(BASE).request_id == "sqs-message-1"


def test_eventbridge_envelope_is_unwrapped_and_its_id_is_the_fallback():
    event = {"version": "0", "id": "eb-123", "detail-type": "Untag Requested", "source": "crm", "detail": BASE}
    request = valid(event)
    assert request.request_id == "eb-123" and request.source_ids == ("c1", "c2")


def test_sns_envelope_is_unwrapped_and_its_id_is_the_fallback():
    note = {"Type": "Notification", "MessageId": "sns-9", "Message": json.dumps({**BASE, "request_id": "mine"})}
    request = valid(note)
    assert request.request_id == "mine"
    assert valid({**note, "Message": json.dumps(BASE)}).request_id == "sns-9"


def test_metadata_is_kept_untouched():
    metadata = {"origin": "crm", "anything": ["json", 1, 2.5, None, {"deep": True}]}
    assert valid({**BASE, "metadata": metadata}).metadata == metadata


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
        ({"tag_ids": ["t1"]}, "source: required"),
        ({"source": {}, "tag_ids": ["t1"]}, "exactly one"),
        ({"source": {"contact_ids": ["c1"], "list_ids": ["l1"]}, "tag_ids": ["t1"]}, "exactly one"),
        ({"source": {"segment_ids": ["s"]}, "tag_ids": ["t1"]}, "unknown source"),
        ({"source": {"contact_ids": []}, "tag_ids": ["t1"]}, "must not be empty"),
        ({"source": {"contact_ids": "c1"}, "tag_ids": ["t1"]}, "must be an array"),
        ({"source": {"contact_ids": ["../admin"]}, "tag_ids": ["t1"]}, "must match"),
        ({"source": {"contact_ids": ["x" * 65]}, "tag_ids": ["t1"]}, "must match"),
        ({"source": {"contact_ids": [7]}, "tag_ids": ["t1"]}, "must match"),
        ({"source": {"all_active_contacts": False}, "tag_ids": ["t1"]}, "must be true"),
        ({"source": {"new_subscriber": "yes"}, "tag_ids": ["t1"]}, "must be true"),
        ({"source": {"contact_ids": ["c1"]}}, "tag_ids: required"),
        ({"source": {"contact_ids": ["c1"]}, "tag_ids": []}, "tag_ids: must not be empty"),
        ({**BASE, "exclude": {"contact_ids": ["c9"]}}, "allowed only with"),
        ({"source": {"tag_ids": ["t"], "exclude": ["c9"]}, "tag_ids": ["t1"]}, "allowed only with"),
        ({"source": {"list_ids": ["l"]}, "exclude": ["c9"], "tag_ids": ["t1"]}, "must be an object"),
        (
            {"source": {"list_ids": ["l"], "exclude": ["c1"]}, "exclude": {"contact_ids": ["c2"]}, "tag_ids": ["t"]},
            "given both",
        ),
        ({**BASE, "metadata": [1]}, "metadata: must be a JSON object"),
        ({**BASE, "metadata": {"big": "x" * 5000}}, "at most 4096"),
        ({**BASE, "request_id": "x" * 129}, "request_id"),
        ({**BASE, "request_id": "has space"}, "request_id"),
        ({**BASE, "tags": ["t1"]}, "unknown field"),
        ({"Type": "Notification", "MessageId": "m", "Message": "{not json"}, "Message"),
        ({"detail-type": "x", "detail": "a string"}, "must be a JSON object"),
    ],
)
def test_every_rule_has_a_clear_error(body, fragment):
    assert any(fragment in error for error in errors_of(body)), errors_of(body)


def test_a_rejection_reports_every_problem_and_keeps_what_it_could_read():
    body = json.dumps({"request_id": "r-7", "source": {}, "tag_ids": ["t1", "bad/id"], "metadata": {"a": 1}})
    rejection = read_request(body, "m-1")
    assert isinstance(rejection, Rejection)
    assert rejection.request_id == "r-7" and rejection.original_body == body
    assert len(rejection.errors) == 2 and rejection.metadata == {"a": 1}


def test_a_rejected_envelope_falls_back_to_the_envelope_id():
    event = {"id": "eb-1", "detail-type": "x", "source": "s", "detail": {"source": {}}}
    assert read(event).request_id == "eb-1"


def test_contacts_are_split_into_activities_of_500_and_tags_of_50():
    contacts = [f"c{n}" for n in range(1201)]
    tags = [f"t{n}" for n in range(60)]
    plans = plan_activities(valid({"source": {"contact_ids": contacts}, "tag_ids": tags}))
    assert len(plans) == 3 * 2
    assert [len(p.body["source"]["contact_ids"]) for p in plans] == [500, 500, 500, 500, 201, 201]
    assert [len(p.body["tag_ids"]) for p in plans] == [50, 10] * 3
    assert {c for p in plans for c in p.body["source"]["contact_ids"]} == set(contacts)
    assert [p.index for p in plans] == list(range(6))


def test_list_and_tag_sources_split_at_50_and_keep_the_exclusion_on_every_activity():
    request = valid(
        {"source": {"list_ids": [f"l{n}" for n in range(120)]}, "exclude": {"contact_ids": ["c9"]}, "tag_ids": ["t1"]}
    )
    plans = plan_activities(request)
    assert [len(p.body["source"]["list_ids"]) for p in plans] == [50, 50, 20]
    assert all(p.body["exclude"] == {"contact_ids": ["c9"]} for p in plans)
    assert len(plan_activities(valid({"source": {"tag_ids": [f"t{n}" for n in range(51)]}, "tag_ids": ["x"]}))) == 2


def test_plans_are_canonical_bodies_only():
    plan = plan_activities(
        valid({"request_id": "r", "source": {"new_subscriber": "true"}, "tag_ids": ["t1"], "metadata": {"a": 1}})
    )[0]
    assert plan.body == {"source": {"new_subscriber": True}, "tag_ids": ["t1"]}


def test_only_small_contact_requests_without_exclusions_can_share_activities():
    assert can_share_activities(valid(BASE))
    assert not can_share_activities(valid({"source": {"contact_ids": [f"c{n}" for n in range(501)]}, "tag_ids": ["t"]}))
    assert not can_share_activities(valid({"source": {"list_ids": ["l"]}, "tag_ids": ["t"]}))
