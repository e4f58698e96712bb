"""Property-based tests of the request reader: over arbitrary JSON and near-valid bodies it never raises,
and whatever it accepts plans only activity bodies Constant Contact's schema allows."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from devkit.simulator import validate_tagging_body
from untag.request import Rejection, UntagRequest, plan_activities, read_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
ids = st.one_of(st.from_regex(r"[A-Za-z0-9-]{1,64}", fullmatch=True), st.text(max_size=70), st.integers())
id_lists = st.lists(ids, max_size=60)
sources = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "contact_ids": st.lists(ids, max_size=700),
            "list_ids": id_lists,
            "tag_ids": id_lists,
            "all_active_contacts": st.sampled_from([True, "true", "TRUE", False, "no", 1]),
            "new_subscriber": st.sampled_from([True, "true", None, 0]),
            "exclude": st.one_of(id_lists, json_values),
        },
    ),
    json_values,
)
near_valid = st.fixed_dictionaries(
    {"source": sources},
    optional={
        "request_id": st.one_of(st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True), json_values),
        "tag_ids": st.one_of(st.lists(ids, min_size=0, max_size=120), json_values),
        "exclude": st.one_of(st.fixed_dictionaries({"contact_ids": id_lists}), json_values),
        "metadata": json_values,
        "unexpected": json_values,
    },
)


def check(body: str) -> None:
    outcome = read_request(body, "m-1")
    assert isinstance(outcome, (UntagRequest, Rejection))
    if isinstance(outcome, Rejection):
        assert outcome.errors and outcome.original_body == body
        return
    for plan in plan_activities(outcome):
        assert validate_tagging_body(plan.body) == [], plan.body


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises(value):
    check(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text):
    check(text)


@settings(max_examples=500, deadline=None)
@given(near_valid)
def test_near_valid_requests_are_rejected_or_planned_into_valid_activities(request):
    check(json.dumps(request))


@settings(max_examples=200, deadline=None)
@given(near_valid, st.sampled_from(["eventbridge", "sns"]))
def test_enveloped_requests_behave_like_bare_ones(request, envelope):
    body = json.dumps(request)
    if envelope == "eventbridge":
        wrapped = json.dumps({"id": "eb-1", "detail-type": "x", "source": "s", "detail": request})
    else:
        wrapped = json.dumps({"Type": "Notification", "MessageId": "sns-1", "Message": body})
    bare, enveloped = read_request(body, "m-1"), read_request(wrapped, "m-1")
    assert type(bare) is type(enveloped)
    if isinstance(bare, UntagRequest):
        assert plan_activities(bare) == plan_activities(enveloped)
