"""The use cases on in-memory fakes of their ports: intake, creation, poller and settlement, in milliseconds.

Given / When / Then, as the integration tests, but with Constant Contact, the table, SNS and the
clock in memory (tests/unit/fakes.py); tests/integration drives the same behaviour through moto
and the simulator over HTTP.
"""

from __future__ import annotations

import json

from tests.unit.fakes import QuotaSpent, Services, budget
from untag.constant_contact import AuthenticationError, TransientApiError
from untag.creation import create_due
from untag.intake import Message, accept_batch
from untag.poller import poll
from untag.records import RequestStatus

AT = 1_800_000_000.0


def message(n: int, body: dict | str) -> Message:
    return Message(f"m-{n}", body if isinstance(body, str) else json.dumps(body), sent_at=AT)


def contacts(request_id: str, *ids: str, tag: str = "t-1") -> dict:
    return {"request_id": request_id, "source": {"contact_ids": list(ids)}, "tag_ids": [tag]}


def lists(request_id: str, tag: str = "t-1") -> dict:
    return {"request_id": request_id, "source": {"list_ids": [f"l-{request_id}"]}, "tag_ids": [tag]}


def big(request_id: str, chunks: int) -> dict:
    return contacts(request_id, *[f"c-{n}" for n in range(500 * chunks)])


# --- intake: batching and coalescing ------------------------------------------------------------


def test_small_requests_removing_the_same_tags_share_one_activity_and_each_records_it():
    services = Services()
    batch = [message(n, contacts(f"r-{n}", f"c-{n}")) for n in range(5)] + [
        message(9, contacts("r-9", "c-9", tag="t-2"))
    ]

    failed = accept_batch(batch, services, budget(services))

    assert failed == set()
    assert [sorted(body["source"]["contact_ids"]) for body in services.constant_contact.created] == [
        ["c-0", "c-1", "c-2", "c-3", "c-4"],
        ["c-9"],
    ]
    records = services.store.requests
    assert {records[f"r-{n}"].activities[0] for n in range(5)} == {"a-1"} and records["r-9"].activities == {0: "a-2"}
    assert all(record.status is RequestStatus.PENDING for record in records.values())
    assert services.store.activities["a-1"].request_ids == tuple(f"r-{n}" for n in range(5))


def test_a_bad_body_is_published_rejected_and_its_neighbours_go_ahead():
    services = Services()
    failed = accept_batch([message(1, "{nope"), message(2, lists("r-2"))], services, budget(services))
    assert failed == set()
    [event] = services.publisher.events
    assert event["state"] == "rejected" and event["original_body"] == "{nope" and event["request_id"] == "m-1"
    assert len(services.constant_contact.created) == 1


def test_a_duplicate_delivery_does_nothing_and_a_reused_id_is_rejected():
    services = Services()
    accept_batch([message(1, lists("r-1"))], services, budget(services))
    accept_batch([message(2, lists("r-1")), message(3, lists("r-1", tag="t-9"))], services, budget(services))
    assert len(services.constant_contact.created) == 1
    [event] = services.publisher.events
    assert event["state"] == "rejected" and "already used for a different request" in event["errors"][0]


def test_an_invocation_without_time_leaves_every_message_for_sqs_and_calls_nothing():
    services = Services()
    failed = accept_batch([message(1, lists("r-1")), message(2, lists("r-2"))], services, budget(services, 0.4))
    assert failed == {"m-1", "m-2"} and services.constant_contact.calls == [] and services.store.requests == {}


def test_while_the_quota_is_spent_requests_are_recorded_and_nothing_is_called():
    services = Services()
    services.controls.spent = True
    assert accept_batch([message(1, lists("r-1"))], services, budget(services)) == set()
    assert services.constant_contact.calls == [] and services.store.requests["r-1"].status is RequestStatus.CREATING
    assert "r-1" in services.store.creation_due


# --- creation: resuming, holds, budget and quota stops --------------------------------------------


def test_a_resumed_request_creates_only_its_missing_chunks():
    services = Services()
    services.constant_contact.failures = [TransientApiError("503", status=503)]  # the second chunk fails once
    accept_batch([message(1, big("r-1", 3))], services, budget(services))
    record = services.store.requests["r-1"]
    assert record.status is RequestStatus.CREATING and len(record.activities) == 2 and record.missing_chunks() == {0}

    services.clock.advance(services.config.create_retry_seconds)
    create_due(services, budget(services))

    assert services.store.requests["r-1"].status is RequestStatus.PENDING
    assert len(services.constant_contact.created) == 3


def test_a_transient_failure_waits_for_the_retry_pause_before_the_next_try():
    services = Services()
    services.constant_contact.failures = [TransientApiError("connect timeout")]
    accept_batch([message(1, lists("r-1"))], services, budget(services))
    assert services.store.creation_due["r-1"] == services.clock() + 30  # due after the pause
    create_due(services, budget(services))
    assert services.constant_contact.created == []  # not yet
    services.clock.advance(30)
    create_due(services, budget(services))
    assert len(services.constant_contact.created) == 1


def test_a_budget_stop_lets_go_of_the_held_requests_at_once():
    services = Services()

    def slow_create(body):  # each create takes 20 s of the invocation's 60
        services.clock.advance(20)
        return original(body)

    original, services.constant_contact.create_tag_removal = services.constant_contact.create_tag_removal, slow_create
    accept_batch([message(n, lists(f"r-{n}")) for n in range(5)], services, budget(services))

    created = len(services.constant_contact.created)
    assert 1 <= created < 5
    waiting = [record for record in services.store.requests.values() if record.status is RequestStatus.CREATING]
    assert len(waiting) == 5 - created and all(record.lease_until == 0.0 for record in waiting)
    assert all(services.store.creation_due[record.request_id] <= services.clock() for record in waiting)


def test_the_quota_spent_mid_batch_stops_creation_and_blocks_both_functions():
    services = Services()
    services.constant_contact.failures = [QuotaSpent()]
    accept_batch([message(1, lists("r-1")), message(2, lists("r-2"))], services, budget(services))
    assert services.controls.spent and services.constant_contact.created == []
    report = poll(services, budget(services))
    assert report.skipped == "daily quota spent" and services.constant_contact.calls == ["create"]


def test_refused_tokens_stop_creation_and_keep_the_requests():
    services = Services()
    services.constant_contact.failures = [AuthenticationError("401 after a refresh", status=401)]
    assert accept_batch([message(1, lists("r-1"))], services, budget(services)) == set()
    assert services.store.requests["r-1"].status is RequestStatus.CREATING and services.constant_contact.created == []


def test_a_refused_contact_in_a_shared_activity_fails_only_its_request():
    services = Services()
    services.constant_contact.refused_contacts = {"c-bad"}
    batch = [message(n, contacts(f"r-{n}", f"c-{n}")) for n in range(4)] + [message(8, contacts("r-bad", "c-bad"))]
    accept_batch(batch, services, budget(services))
    records = services.store.requests
    assert records["r-bad"].activities == {} and records["r-bad"].status is RequestStatus.FINISHED
    assert all(len(records[f"r-{n}"].activities) == 1 for n in range(4))
    [failed] = [event for event in services.publisher.events if event["request_id"] == "r-bad"]
    assert failed["state"] == "failed" and "contact refused" in failed["errors"][0]


def test_a_chunk_whose_creates_twice_got_no_answer_is_not_tried_a_third_time():
    services = Services()
    services.constant_contact.failures = [TransientApiError("read timeout", maybe_done=True)] * 2
    accept_batch([message(1, lists("r-1"))], services, budget(services))
    services.clock.advance(30)
    create_due(services, budget(services))
    services.clock.advance(30)
    create_due(services, budget(services))
    assert services.constant_contact.calls.count("create") == 2
    [event] = services.publisher.events
    assert event["state"] == "failed" and "not tried again" in event["errors"][0]
    assert [item.chunk for item in services.store.ambiguous] == [0, 0]


# --- poller: settlement precedence, deadline, evidence of a lost activity --------------------------


def settle_with(states: list[str]) -> dict:
    services = Services()
    accept_batch([message(1, big("r-1", len(states)))], services, budget(services))
    for activity_id, state in zip(sorted(services.constant_contact.states), states, strict=True):
        services.constant_contact.states[activity_id] = state
    poll(services, budget(services))
    [event] = services.publisher.events
    return event


def test_a_request_is_completed_only_if_every_activity_completed_else_the_worst_outcome():
    assert settle_with(["completed", "completed"])["state"] == "completed"
    assert settle_with(["completed", "cancelled", "failed"])["state"] == "failed"
    assert settle_with(["cancelled", "timed_out"])["state"] == "timed_out"
    assert settle_with(["completed", "cancelled"])["state"] == "cancelled"


def test_a_request_waits_while_one_of_its_activities_runs():
    services = Services()
    accept_batch([message(1, big("r-1", 2))], services, budget(services))
    services.constant_contact.states["a-1"] = "completed"
    poll(services, budget(services))
    assert services.publisher.events == [] and services.store.requests["r-1"].status is RequestStatus.PENDING
    services.constant_contact.states["a-2"] = "completed"
    services.clock.advance(61)
    poll(services, budget(services))
    [event] = services.publisher.events
    assert event["state"] == "completed" and [a["activity_id"] for a in event["activities"]] == ["a-1", "a-2"]


def test_the_deadline_ends_an_unfinished_activity_but_a_completed_read_wins():
    services = Services()
    accept_batch([message(1, lists("r-1")), message(2, lists("r-2", tag="t-2"))], services, budget(services))
    services.clock.advance(services.config.activity_deadline_hours * 3600 + 1)
    services.constant_contact.states["a-2"] = "completed"
    poll(services, budget(services))
    states = {event["request_id"]: event["state"] for event in services.publisher.events}
    assert states == {"r-1": "timed_out", "r-2": "completed"}


def test_a_404_is_only_noted_until_the_activity_has_been_missing_long_enough():
    services = Services()
    accept_batch([message(1, lists("r-1"))], services, budget(services))
    services.constant_contact.unknown.add("a-1")
    poll(services, budget(services))
    assert services.publisher.events == [] and services.store.activities["a-1"].missing_since == services.clock()
    services.clock.advance(services.config.activity_missing_hours * 3600)
    poll(services, budget(services))
    [event] = services.publisher.events
    assert event["state"] == "timed_out" and "no longer knows" in event["activities"][0]["errors"][-1]


def test_an_activity_that_reappears_forgets_its_miss():
    services = Services()
    accept_batch([message(1, lists("r-1"))], services, budget(services))
    services.constant_contact.unknown.add("a-1")
    poll(services, budget(services))
    services.constant_contact.unknown.clear()
    services.clock.advance(61)
    poll(services, budget(services))
    assert services.store.activities["a-1"].missing_since is None


# --- settlement: stored once, published, retried -------------------------------------------------


def test_an_event_sns_refused_stays_due_and_the_next_run_publishes_the_same_event():
    services = Services()
    accept_batch([message(1, lists("r-1"))], services, budget(services))
    services.constant_contact.states["a-1"] = "completed"
    services.publisher.refuse = True
    poll(services, budget(services))
    assert services.publisher.events == [] and services.store.publication_due
    services.publisher.refuse = False
    poll(services, budget(services))
    poll(services, budget(services))
    [event] = services.publisher.events
    assert event["state"] == "completed" and not services.store.publication_due
    assert json.loads(services.store.requests["r-1"].event) == event


def test_a_request_none_of_whose_activities_could_be_created_fails_at_once():
    services = Services()
    services.constant_contact.refused_contacts = {"c-1"}
    accept_batch([message(1, contacts("r-1", "c-1"))], services, budget(services))
    [event] = services.publisher.events
    assert event["state"] == "failed" and event["activities"] == []
