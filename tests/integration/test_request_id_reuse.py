"""A request id reused for a different body never changes what the first request does."""

import json

FIRST = json.dumps({"request_id": "r-1", "source": {"list_ids": ["L1"]}, "tag_ids": ["t1"]})
OTHER = json.dumps({"request_id": "r-1", "source": {"list_ids": ["OTHER"]}, "tag_ids": ["t9"]})


def created_bodies(simulator):
    return [activity["body"] for activity in simulator.activities.values()]


def test_a_different_body_under_an_id_still_being_created_is_ignored(invoke, sqs_event, simulator):
    # Given a request whose creation failed transiently (it stays 'creating' for a retry)
    simulator.fail_next("POST", "/v3/activities/contacts_taggings_remove", 503)
    assert invoke.intake(sqs_event(FIRST))["batchItemFailures"]
    # When another body arrives under the same request id
    assert invoke.intake(sqs_event(OTHER)) == {"batchItemFailures": []}
    # Then nothing was created for it; and the first request's retry creates the first request's activity
    assert created_bodies(simulator) == []
    assert invoke.intake(sqs_event(FIRST)) == {"batchItemFailures": []}
    assert created_bodies(simulator) == [{"source": {"list_ids": ["L1"]}, "tag_ids": ["t1"]}]


def test_two_bodies_under_one_id_in_one_batch_create_only_the_first(invoke, sqs_event, simulator):
    assert invoke.intake(sqs_event(FIRST, OTHER)) == {"batchItemFailures": []}
    assert created_bodies(simulator) == [{"source": {"list_ids": ["L1"]}, "tag_ids": ["t1"]}]
