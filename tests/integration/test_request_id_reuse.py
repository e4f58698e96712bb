"""A request id reused for a different body never changes what the first request does, and is rejected."""

import json

FIRST = json.dumps({"request_id": "r-1", "source": {"list_ids": ["L1"]}, "tag_ids": ["t1"]})
OTHER = json.dumps({"request_id": "r-1", "source": {"list_ids": ["OTHER"]}, "tag_ids": ["t9"]})


def created_bodies(simulator):
    return [activity["body"] for activity in simulator.activities.values()]


def test_a_different_body_under_an_id_still_being_created_is_rejected_and_the_first_goes_on(
    invoke, sqs_event, simulator, table
):
    # Given a request whose creation failed transiently (it is recorded, waiting for the next driver)
    simulator.fail_next("POST", "/v3/activities/contacts_taggings_remove", 503)
    assert invoke.intake(sqs_event(FIRST)) == {"batchItemFailures": []}
    assert table.request("r-1")["status"] == "creating"
    # When another body arrives under the same request id, with the first one's redelivery
    assert invoke.intake(sqs_event(OTHER, FIRST)) == {"batchItemFailures": []}
    # Then the other body is rejected, saying why, and only the first request's activity is created
    [rejected] = invoke.results()
    assert rejected["state"] == "rejected" and rejected["request_id"] == "r-1"
    assert "already used for a different request" in rejected["errors"][0]
    assert rejected["original_body"] == OTHER
    assert created_bodies(simulator) == [{"source": {"list_ids": ["L1"]}, "tag_ids": ["t1"]}]


def test_two_bodies_under_one_id_in_one_batch_create_only_the_first_and_reject_the_other(invoke, sqs_event, simulator):
    assert invoke.intake(sqs_event(FIRST, OTHER)) == {"batchItemFailures": []}
    assert created_bodies(simulator) == [{"source": {"list_ids": ["L1"]}, "tag_ids": ["t1"]}]
    [rejected] = invoke.results()
    assert rejected["state"] == "rejected" and rejected["original_body"] == OTHER
