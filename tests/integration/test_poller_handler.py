"""Integration tests of the poller function: pending activities in; Constant Contact reads and result events out.

The poller is the handler template.yaml names, called with events/poller-scheduled.json; the
activities it follows are created by the intake handler beforehand. The simulator finishes an
activity on its second read (the first shows it processing).
"""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import EndpointConnectionError

from untag.publisher import SnsPublisher
from untag.services import current_services

REMOVE_TAGS = "/v3/activities/contacts_taggings_remove"
COLLECTION = "/v3/activities"


def list_request(request_id: str, tag_id: str) -> dict:
    """A request that needs an activity of its own; its single list counts 10 contacts at the simulator."""
    return {"request_id": request_id, "source": {"list_ids": [f"l-{request_id}"]}, "tag_ids": [tag_id]}


def collection_reads(simulator) -> list:
    """GET /v3/activities calls (the collection, not one activity)."""
    return [call for call in simulator.calls if call.method == "GET" and call.path == COLLECTION]


def reads_by_id(simulator, activity_id: str | None = None) -> int:
    return simulator.count("GET", f"{COLLECTION}/{activity_id}" if activity_id else f"{COLLECTION}/")


def activity_of(simulator, tag_id: str) -> str:
    [activity_id] = [aid for aid, activity in simulator.activities.items() if activity["body"]["tag_ids"] == [tag_id]]
    return activity_id


def by_request(results: list[dict]) -> dict[str, dict]:
    assert len({event["request_id"] for event in results}) == len(results), results
    return {event["request_id"]: event for event in results}


@pytest.fixture
def three_pending(invoke, sqs_event):
    """Three accepted requests, each carried by its own activity, none polled yet."""
    response = invoke.intake(
        sqs_event(list_request("r-1", "t-1"), list_request("r-2", "t-2"), list_request("r-3", "t-3"))
    )
    assert response == {"batchItemFailures": []}


@pytest.fixture
def one_pending(invoke, sqs_event, simulator) -> str:
    """One accepted request, carried by one activity, not polled yet; returns the activity id."""
    assert invoke.intake(sqs_event(list_request("r-1", "t-1"))) == {"batchItemFailures": []}
    [activity_id] = simulator.activities
    return activity_id


def test_several_pending_activities_are_followed_with_one_collection_read_per_run(three_pending, invoke, simulator):
    # Given three pending activities among twenty other activities of the account (exports, imports...)
    simulator.add_foreign_activities(20)

    # When the scheduled poller runs
    first = invoke.poller()

    # Then it read all three with one GET /v3/activities (500 a page), and none one by one
    assert [call.query for call in collection_reads(simulator)] == [{"limit": "500"}]
    assert reads_by_id(simulator) == 0
    assert first["pending_activities"] == 3 and first["api_gets"] == 1
    assert invoke.results() == []  # all three are processing

    # When it runs again
    invoke.poller()

    # Then one more collection read finds them completed, and each request gets its event
    assert len(collection_reads(simulator)) == 2 and reads_by_id(simulator) == 0
    events = by_request(invoke.results())
    assert sorted(events) == ["r-1", "r-2", "r-3"]
    for request_id, event in events.items():
        assert event["state"] == "completed"
        [activity] = event["activities"]
        assert activity["activity_id"] == activity_of(simulator, f"t-{request_id[-1]}")
        assert (activity["state"], activity["items_total_count"], activity["items_completed_count"]) == (
            "completed",
            10,
            10,
        )

    # When it runs once more, with nothing left to follow
    calls = len(simulator.calls)
    last = invoke.poller()

    # Then it asks Constant Contact nothing and publishes nothing
    assert len(simulator.calls) == calls and last["pending_activities"] == 0
    assert len(invoke.results()) == 3


def test_a_single_pending_activity_is_read_by_id(one_pending, invoke, simulator):
    # Given one pending activity
    # When the poller runs twice
    invoke.poller()
    invoke.poller()

    # Then it read that activity by id each time, never the collection
    assert reads_by_id(simulator, one_pending) == 2
    assert collection_reads(simulator) == []
    [event] = invoke.results()
    assert event["request_id"] == "r-1" and event["state"] == "completed"


def test_an_activity_constant_contact_no_longer_knows_ends_timed_out(one_pending, invoke, simulator, monkeypatch):
    # Given a pending activity Constant Contact has forgotten, past the window a miss is tolerated
    monkeypatch.setenv("ACTIVITY_MISSING_HOURS", "0")
    simulator.forget_activity(one_pending)

    # When the poller runs
    invoke.poller()

    # Then the 404 (the collection answering: the API root is right) ends the activity, and the request, as timed_out
    assert simulator.count("GET", f"{COLLECTION}/{one_pending}", 404) == 1
    [event] = invoke.results()
    assert event["state"] == "timed_out" and event["event_type"] == "untag.timed_out"
    [activity] = event["activities"]
    assert activity["activity_id"] == one_pending and activity["state"] == "timed_out" and activity["errors"]
    assert event["errors"]

    # And the next run has nothing left to ask
    calls = len(simulator.calls)
    invoke.poller()
    assert len(simulator.calls) == calls and len(invoke.results()) == 1


def test_an_activity_missing_from_the_collection_is_checked_by_id_and_ends_timed_out(
    three_pending, invoke, simulator, monkeypatch
):
    # Given three pending activities, one of which Constant Contact has forgotten, past the tolerated window
    monkeypatch.setenv("ACTIVITY_MISSING_HOURS", "0")
    forgotten = activity_of(simulator, "t-2")
    simulator.forget_activity(forgotten)

    # When the poller runs
    invoke.poller()

    # Then one collection read, plus one read by id for the activity the collection did not show (404)
    assert len(collection_reads(simulator)) == 1
    assert reads_by_id(simulator) == reads_by_id(simulator, forgotten) == 1
    [event] = invoke.results()
    assert (event["request_id"], event["state"]) == ("r-2", "timed_out")

    # When it runs again
    invoke.poller()

    # Then the two others complete with one more collection read, and the forgotten one is not asked again
    assert len(collection_reads(simulator)) == 2 and reads_by_id(simulator) == 1
    assert {event["request_id"]: event["state"] for event in invoke.results()} == {
        "r-1": "completed",
        "r-2": "timed_out",
        "r-3": "completed",
    }


def created_under_a_short_deadline(
    request_id, invoke, sqs_event, simulator, table, monkeypatch, *, polls_before: int = 0
) -> str:
    """An activity created under a service deadline of 0.36 s, polled ``polls_before`` times, its deadline past."""
    monkeypatch.setenv("ACTIVITY_DEADLINE_HOURS", "0.0001")
    invoke.intake(sqs_event(list_request(request_id, "t-1")))
    [activity_id] = simulator.activities
    for _ in range(polls_before):
        invoke.poller()
    time.sleep(max(0.0, table.activity(activity_id)["deadline_at"] - time.time()))  # at most the 0.36 s
    return activity_id


def test_an_activity_past_the_service_deadline_ends_timed_out_once_a_fresh_read_says_it_is_unfinished(
    invoke, sqs_event, simulator, table, monkeypatch
):
    # Given an activity whose deadline has passed
    created_under_a_short_deadline("r-late", invoke, sqs_event, simulator, table, monkeypatch)
    simulator.reset_counters()

    # When the poller runs
    invoke.poller()

    # Then it reads the activity once more, and ends it as timed_out because it is still unfinished
    assert len(simulator.calls) == 1
    [event] = invoke.results()
    assert event["request_id"] == "r-late" and event["state"] == "timed_out"
    [activity] = event["activities"]
    assert activity["state"] == "timed_out"
    assert any("deadline" in error for error in activity["errors"]), activity


def test_an_activity_that_completed_by_the_deadline_is_completed_not_timed_out(
    invoke, sqs_event, simulator, table, monkeypatch
):
    # Given an activity read once (processing), whose deadline then passes while Constant Contact finishes it
    created_under_a_short_deadline("r-done", invoke, sqs_event, simulator, table, monkeypatch, polls_before=1)

    # When the poller runs after the deadline
    invoke.poller()

    # Then the fresh read's completed state wins
    [event] = invoke.results()
    assert event["request_id"] == "r-done" and event["state"] == "completed"


def test_no_activity_is_ended_by_the_deadline_while_it_cannot_be_read(invoke, sqs_event, simulator, table, monkeypatch):
    # Given an activity past the deadline and Constant Contact failing every read
    activity_id = created_under_a_short_deadline("r-blind", invoke, sqs_event, simulator, table, monkeypatch)
    simulator.fail_next("GET", "/v3/activities", 503, count=10)

    # When the poller runs
    invoke.poller()

    # Then nothing is ended on the deadline alone
    assert invoke.results() == []
    assert table.activity(activity_id)["state"] in ("initialized", "processing")


def test_a_failed_read_is_retried_by_the_next_run(three_pending, invoke, simulator):
    # Given Constant Contact failing the next collection read
    simulator.fail_next("GET", COLLECTION, 503)

    # When the poller runs three times
    invoke.poller()
    assert invoke.results() == []
    invoke.poller()
    invoke.poller()

    # Then the failed read only delayed the outcome: three completed events
    assert [call.status for call in collection_reads(simulator)] == [503, 200, 200]
    assert {event["request_id"]: event["state"] for event in invoke.results()} == {
        "r-1": "completed",
        "r-2": "completed",
        "r-3": "completed",
    }


def test_an_event_sns_did_not_take_stays_due_and_the_next_run_publishes_it_with_the_same_event_id(
    one_pending, invoke, simulator, table, monkeypatch
):
    # Given a request whose activity completes on the next read, and SNS unreachable for that run
    invoke.poller()
    services = current_services()
    reachable = services.publisher  # the poller's own SNS port

    def unreachable():
        raise EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com/")

    monkeypatch.setattr(services, "publisher", SnsPublisher(unreachable, services.config.topic_arn))

    # When the poller runs
    invoke.poller()

    # Then no event reached subscribers, and the finished request's event stays due
    assert invoke.results() == []
    stored = table.request("r-1")
    assert stored["status"] == "finished" and stored["due"] == "PUBLISH"
    stored_event = json.loads(stored["event"])
    assert stored_event["state"] == "completed"

    # When SNS is back and the poller runs again
    monkeypatch.setattr(services, "publisher", reachable)
    calls = len(simulator.calls)
    invoke.poller()

    # Then that very event is published, same event_id, without asking Constant Contact anything
    [event] = invoke.results()
    assert event["event_id"] == stored_event["event_id"]
    assert {key: value for key, value in event.items() if key != "_attributes"} == stored_event
    assert len(simulator.calls) == calls
    assert "due" not in table.request("r-1")

    # And the run after that publishes nothing more
    invoke.poller()
    assert len(invoke.results()) == 1


def test_back_to_back_runs_after_the_activity_is_final_publish_exactly_one_event(one_pending, invoke, simulator):
    # Given an activity the first run sees processing
    invoke.poller()

    # When the poller runs twice back to back (the first of them sees it completed)
    invoke.poller()
    invoke.poller()

    # Then exactly one event was published, and the last run asked Constant Contact nothing
    [event] = invoke.results()
    assert event["state"] == "completed"
    assert reads_by_id(simulator, one_pending) == 2


def test_a_quota_spent_while_polling_blocks_the_following_runs(one_pending, invoke, simulator, table):
    # Given the day's quota spent while an activity is pending
    simulator.exhaust_quota()

    # When the poller runs
    first = invoke.poller()

    # Then its one read is refused, the block is stored, and the run reports it skipped
    assert simulator.count("GET", status=429) == 1
    assert first["skipped"] == "daily quota spent"
    assert table.quota_blocked_until() > time.time()

    # When it runs again
    calls = len(simulator.calls)
    second = invoke.poller()

    # Then it does not even try
    assert second["skipped"] == "daily quota spent" and second["api_gets"] == 0
    assert len(simulator.calls) == calls
    assert invoke.results() == []


def test_a_404_right_after_creation_ends_nothing_and_the_activity_is_followed_when_it_appears(
    one_pending, invoke, simulator, table
):
    # Given an activity Constant Contact does not show yet (its lists lag behind its creates)
    simulator.fail_next(
        "GET", f"{COLLECTION}/{one_pending}", 404, body=[{"error_key": "not_found", "error_message": "not found"}]
    )

    # When the poller runs
    invoke.poller()

    # Then nothing ends: the miss is noted, and the activity is asked again
    assert invoke.results() == []
    assert table.activity(one_pending)["missing_since"] > 0

    # When it runs again and Constant Contact knows the activity
    invoke.poller()
    invoke.poller()

    # Then the request completes, and the miss is forgotten
    [event] = invoke.results()
    assert event["state"] == "completed"
    assert "missing_since" not in table.activity(one_pending)


def test_an_api_root_that_answers_404_everywhere_ends_nothing_and_says_so(
    one_pending, invoke, simulator, table, monkeypatch, capsys
):
    # Given a misconfigured API base URL (every path answers 404)
    monkeypatch.setenv("CC_API_BASE_URL", simulator.base_url + "/wrong")
    monkeypatch.setenv("ACTIVITY_MISSING_HOURS", "0")

    # When the poller runs, twice
    first = invoke.poller()
    invoke.poller()

    # Then it ends nothing, reports why, and counts it for the alarm
    assert invoke.results() == []
    assert "404" in first["skipped"] and "CcApiBaseUrl" in first["skipped"]
    assert table.activity(one_pending)["state"] in ("initialized", "processing")
    assert "missing_since" not in table.activity(one_pending)
    assert '"ApiRootNotFound"' in capsys.readouterr().out
    assert all("/v3/wrong/" in problem for problem in simulator.malformed)  # the simulator saw only wrong paths
    simulator.malformed.clear()
