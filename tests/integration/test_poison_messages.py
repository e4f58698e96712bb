"""No message can poison its batch: whatever a body holds, each message ends in exactly one outcome.

An outcome is a ``rejected`` result event that carries the body, or a request recorded in the
table. Nothing raises out of the handler, nothing is left for SQS to deliver again (the table
is healthy here), and the valid requests beside a bad body are accepted as usual.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import untag.store


def failed_ids(response: dict) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def message_ids(event: dict) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


# Every code point, lone surrogates included (hypothesis's default text strategy leaves them out).
ANY_CHARACTER = st.characters(exclude_categories=())
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(ANY_CHARACTER, max_size=8)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(ANY_CHARACTER, max_size=6), inner, max_size=4),
    max_leaves=12,
)


def request_like() -> st.SearchStrategy[str]:
    """Bodies close to a request: right field names, any values (NaN, surrogates, wrong types)."""
    fields = st.fixed_dictionaries(
        {},
        optional={
            "request_id": st.text(ANY_CHARACTER, max_size=10) | JSON_VALUES,
            "source": st.dictionaries(
                st.sampled_from(
                    ["contact_ids", "list_ids", "tag_ids", "all_active_contacts", "new_subscriber", "exclude", "emails"]
                ),
                JSON_VALUES,
                max_size=2,
            ),
            "tag_ids": st.lists(st.text(ANY_CHARACTER, max_size=5), max_size=3) | JSON_VALUES,
            "tag_names": st.lists(st.text(ANY_CHARACTER, max_size=5), max_size=3) | JSON_VALUES,
            "dry_run": st.booleans() | JSON_VALUES,
            "metadata": JSON_VALUES,
            "schema_version": JSON_VALUES,
        },
    )
    return fields.map(lambda document: json.dumps(document, allow_nan=True))


def enveloped(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return inner.map(
        lambda body: json.dumps({"Type": "Notification", "MessageId": "sns-1", "Message": body})
    ) | inner.map(lambda body: json.dumps({"id": "eb-1", "detail-type": "x", "detail": json.loads(body)}))


RAW_BODIES = (
    st.text(ANY_CHARACTER, max_size=40)
    | request_like()
    | enveloped(request_like())
    | JSON_VALUES.map(lambda value: json.dumps(value, allow_nan=True))
)


def valid(request_id: str) -> str:
    return json.dumps({"request_id": request_id, "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]})


def _request_id(body: str) -> str | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    found = document.get("request_id") if isinstance(document, dict) else None
    return found if isinstance(found, str) else None


@pytest.mark.slow
def test_any_body_ends_in_exactly_one_outcome_and_never_fails_its_batch(invoke, sqs_event, table):
    seen_bodies: set[str] = set()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(bodies=st.lists(RAW_BODIES, min_size=1, max_size=4, unique=True))
    def check(bodies: list[str]) -> None:
        bodies = [body for body in bodies if body not in seen_bodies]  # a repeated body is a duplicate delivery
        seen_bodies.update(bodies)
        if not bodies:
            return
        position = len(seen_bodies)
        good = valid(f"good-{position}")
        before_records = set(table.requests())
        before_events = len(invoke.results())
        event = sqs_event(*bodies, good)

        response = invoke.intake(event)

        assert failed_ids(response) == []
        new_events = invoke.results()[before_events:]
        new_records = set(table.requests()) - before_records
        assert f"good-{position}" in new_records  # the valid request beside the bad bodies is accepted
        for published in new_events:
            assert published["state"] == "rejected" and published["errors"]
            json.dumps(published, ensure_ascii=False).encode("utf-8")  # strict JSON, valid Unicode
        for record in event["Records"][:-1]:  # exactly one outcome per message
            echo = _echo(record["body"])
            rejected = [e for e in new_events if e["original_body"] == echo]
            recorded = {record["messageId"], _request_id(record["body"]), "sns-1", "eb-1"} & new_records
            assert len(rejected) + bool(recorded) == 1, (record["body"], rejected, recorded)

    check()


def _echo(body: str) -> str:
    return body.encode("utf-8", "backslashreplace").decode("utf-8")


BAD_BODIES = {
    "lone surrogate, escaped": '{"request_id": "r-s", "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], '
    '"metadata": {"x": "\\ud83d"}}',
    "lone surrogate, raw": '{"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], "metadata": {"x": "\ud83d"}}',
    "NaN": '{"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], "metadata": {"x": NaN}}',
    "Infinity": '{"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], "metadata": {"x": -Infinity}}',
    "1 MiB of JSON": json.dumps(
        {"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], "metadata": {"x": "y" * 1_048_000}}
    ),
    "deep nesting": '{"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], "metadata": '
    + '{"a":' * 900
    + "1"
    + "}" * 901,
    "past the parser": "[" * 50_000 + "]" * 50_000,
    "wrong types": '{"source": [], "tag_ids": {"a": 1}, "request_id": 7, "metadata": "text"}',
    "envelope in an envelope": json.dumps(
        {
            "Type": "Notification",
            "MessageId": "sns-2",
            "Message": json.dumps(
                {"id": "eb-2", "detail-type": "x", "detail": {"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]}}
            ),
        }
    ),
    "schema_version true": '{"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], "schema_version": true}',
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_a_bad_body_is_rejected_alone_and_its_neighbours_are_accepted(name, invoke, sqs_event, table):
    body = BAD_BODIES[name]
    event = sqs_event(valid("before"), body, valid("after"))

    response = invoke.intake(event)

    assert failed_ids(response) == []
    [rejected] = invoke.results()
    assert rejected["state"] == "rejected" and rejected["errors"]
    assert {"before", "after"} <= set(table.requests())
    assert _echo(body).startswith(rejected["original_body"])
    assert len(json.dumps(rejected)) <= 256 * 1024


def test_an_unexpected_error_on_one_record_fails_only_that_record(invoke, sqs_event, table, monkeypatch):
    # Given a table write that fails for one request only
    accept = untag.store.ActivityStore.accept_request

    def flaky(self, request, **options):
        if request.request_id == "r-boom":
            raise RuntimeError("the table hiccuped")
        return accept(self, request, **options)

    monkeypatch.setattr(untag.store.ActivityStore, "accept_request", flaky)
    event = sqs_event(valid("r-1"), valid("r-boom"), valid("r-2"))

    # When the intake handles the batch
    response = invoke.intake(event)

    # Then only that record is left for SQS to deliver again; the others are recorded and created
    assert failed_ids(response) == [message_ids(event)[1]]
    assert {"r-1", "r-2"} <= set(table.requests()) and "r-boom" not in table.requests()
