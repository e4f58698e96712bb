"""The caps a request must respect, and bodies that are valid JSON text but not valid requests."""

from __future__ import annotations

import json

import pytest

from untag.request import BODY_MAX_BYTES, Rejection, UntagRequest, read_request


def request(**fields) -> dict:
    return {"request_id": "r-1", "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], **fields}


def errors_of(body: str, **options) -> tuple[str, ...]:
    outcome = read_request(body, "message-1", **options)
    assert isinstance(outcome, Rejection), outcome
    return outcome.errors


def test_a_body_over_the_cap_is_rejected_naming_the_cap():
    body = json.dumps(request(metadata={"padding": "x" * 100}))
    padded = body[:-1] + ", " + json.dumps({"extra": "y" * BODY_MAX_BYTES})[1:]
    errors = errors_of(padded)
    assert any(f"cap of {BODY_MAX_BYTES} bytes" in error for error in errors), errors


def test_a_body_at_the_cap_is_read():
    body = json.dumps(request(source={"contact_ids": [f"c-{n}" for n in range(20_000)]}))
    assert len(body.encode()) <= BODY_MAX_BYTES
    assert isinstance(read_request(body, "m", max_activities=100), UntagRequest)


def test_a_request_needing_more_activities_than_the_cap_is_rejected_saying_so():
    contacts = [f"c-{n}" for n in range(5_001)]  # 11 activities of at most 500 contacts
    assert isinstance(
        read_request(json.dumps(request(source={"contact_ids": contacts[:5000]})), "m", max_activities=10), UntagRequest
    )
    [error] = errors_of(json.dumps(request(source={"contact_ids": contacts})), max_activities=10)
    assert "needs 11 activities" in error and "cap of 10 activities" in error
    assert "MAX_ACTIVITIES_PER_REQUEST" in error


def test_tags_and_sources_multiply_into_activities():
    tags = [f"t-{n}" for n in range(120)]  # 3 chunks of tags
    lists = [f"l-{n}" for n in range(60)]  # 2 chunks of lists
    [error] = errors_of(json.dumps(request(source={"list_ids": lists}, tag_ids=tags)), max_activities=5)
    assert "needs 6 activities" in error


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_numbers_are_refused(constant):
    body = json.dumps(request(metadata={"score": 1})).replace("1}", constant + "}")
    [error] = errors_of(body)
    assert f"{constant} is not a JSON number" in error


def test_non_standard_numbers_inside_an_sns_message_are_refused():
    inner = json.dumps(request(metadata={"score": 1})).replace("1}", "NaN}")
    body = json.dumps({"Type": "Notification", "MessageId": "sns-1", "Message": inner})
    assert errors_of(body)


@pytest.mark.parametrize("version, valid", [("1", True), (1, True), (True, False), (1.0, True), ("2", False)])
def test_schema_version_must_be_one_not_a_boolean(version, valid):
    outcome = read_request(json.dumps(request(schema_version=version)), "m")
    assert isinstance(outcome, UntagRequest) is valid, outcome


def test_a_lone_surrogate_is_refused_and_the_request_id_is_kept():
    body = '{"request_id": "r-7", "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], "metadata": {"x": "\\ud83d"}}'
    outcome = read_request(body, "m")
    assert isinstance(outcome, Rejection) and outcome.request_id == "r-7"
    assert outcome.errors == ("request.metadata.x: contains a lone UTF-16 surrogate, which is not valid Unicode",)
    assert outcome.metadata is None  # nothing of a body that is not valid Unicode is echoed


def test_a_raw_lone_surrogate_in_a_key_gives_readable_errors():
    outcome = read_request('{"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], "\ud800": 1}', "m")
    assert isinstance(outcome, Rejection)
    for error in outcome.errors:
        error.encode("utf-8")  # every error is valid Unicode


def test_a_surrogate_pair_is_fine():
    outcome = read_request(json.dumps(request(metadata={"emoji": "\U0001f600"})), "m")
    assert isinstance(outcome, UntagRequest) and outcome.metadata == {"emoji": "\U0001f600"}


def test_metadata_nested_too_deep_is_refused():
    deep: dict = {}
    for _ in range(40):
        deep = {"a": deep}
    [error] = errors_of(json.dumps(request(metadata=deep)))
    assert "nested more than 32 levels" in error


def test_json_nested_past_the_parser_is_not_valid_json():
    assert errors_of("[" * 100_000 + "]" * 100_000) == ("body: not valid JSON",)


def test_more_than_500_tags_are_refused_naming_the_cap():
    errors = errors_of(json.dumps(request(tag_ids=[f"t-{n}" for n in range(501)])), max_activities=500)
    assert errors == ("tag_ids: 501 tags, more than the cap of 500 tags per request",)
