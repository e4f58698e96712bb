"""Integration tests of the intake function: SQS batches in; Constant Contact activities, table records and
``batchItemFailures`` out.

The handler is the one template.yaml names, called with Lambda's SQS event shape; AWS is moto
(built from template.yaml), Constant Contact is the simulator over real HTTP.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import boto3
import pytest
import requests

import untag.constant_contact
from devkit.pipeline import LambdaContext

REMOVE_TAGS = "/v3/activities/contacts_taggings_remove"
BULK_CONTACTS = [f"c-{number:04d}" for number in range(1, 1201)]


def list_request(request_id: str, tag_id: str) -> dict:
    """A request that needs an activity of its own (list sources are never merged with other requests)."""
    return {"request_id": request_id, "source": {"list_ids": [f"l-{request_id}"]}, "tag_ids": [tag_id]}


def failed_ids(response: dict) -> list[str]:
    """The messageIds the intake asks SQS to deliver again."""
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def message_ids(event: dict) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


def created_bodies(simulator) -> list[dict]:
    """The bodies of the activities Constant Contact created, in a comparable order."""
    return sorted((activity["body"] for activity in simulator.activities.values()), key=json.dumps)


def tags_of_created_activities(simulator) -> list[list[str]]:
    return sorted(activity["body"]["tag_ids"] for activity in simulator.activities.values())


def next_utc_midnight(epoch: float) -> float:
    return (math.floor(epoch / 86400) + 1) * 86400.0


@dataclass
class ScriptedContext(LambdaContext):
    """A Lambda context that reports the remaining times given, one per look (the last one repeats)."""

    remaining_ms: list[int] = field(default_factory=lambda: [60_000])

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms.pop(0) if len(self.remaining_ms) > 1 else self.remaining_ms[0]


@pytest.fixture(autouse=True)
def short_throttle_backoff(monkeypatch):
    """Same number of back-off retries (3) as deployed, without waiting seconds between them."""
    monkeypatch.setattr(untag.constant_contact, "THROTTLE_BACKOFF_SECONDS", (0.01, 0.01, 0.01))


# --- the sample events -----------------------------------------------------------------------------


def test_the_sample_batch_becomes_canonical_activities_and_no_record_is_retried(invoke, sample_event, simulator):
    # Given the committed sample batch: every source type, both envelopes, the tolerated variants,
    # a 1,200-contact request and one invalid request
    event = sample_event("intake-sqs-batch.json")

    # When the intake handles it
    response = invoke.intake(event)

    # Then no record is left for another try (the invalid one is rejected, not retried)
    assert response == {"batchItemFailures": []}
    # And Constant Contact received exactly these activities, each in the canonical form
    assert created_bodies(simulator) == sorted(
        [
            {"source": {"contact_ids": ["c-1", "c-2"]}, "tag_ids": ["t-churn-risk"]},
            {
                "source": {"list_ids": ["l-newsletter", "l-promotions"]},
                "exclude": {"contact_ids": ["c-9"]},
                "tag_ids": ["t-black-friday", "t-cyber-monday"],
            },
            {"source": {"tag_ids": ["t-vip-2025"]}, "tag_ids": ["t-vip-2025"]},
            {
                "source": {"all_active_contacts": True},
                "exclude": {"contact_ids": ["c-keep-1", "c-keep-2"]},
                "tag_ids": ["t-trial"],
            },
            {"source": {"new_subscriber": True}, "tag_ids": ["t-welcome-series"]},
            {"source": {"all_active_contacts": True}, "exclude": {"contact_ids": ["c-9"]}, "tag_ids": ["t-legacy"]},
            {"source": {"contact_ids": ["c-100", "c-101"]}, "tag_ids": ["t-eventbridge"]},
            {"source": {"list_ids": ["l-sns"]}, "tag_ids": ["t-sns"]},
            {"source": {"contact_ids": BULK_CONTACTS[:500]}, "tag_ids": ["t-bulk"]},
            {"source": {"contact_ids": BULK_CONTACTS[500:1000]}, "tag_ids": ["t-bulk"]},
            {"source": {"contact_ids": BULK_CONTACTS[1000:]}, "tag_ids": ["t-bulk"]},
        ],
        key=json.dumps,
    )
    assert simulator.count("POST", REMOVE_TAGS) == simulator.count("POST", REMOVE_TAGS, 201) == 11
    # And the invalid request came back as one rejected event carrying its body
    invalid = event["Records"][-1]
    [rejected] = invoke.results()
    assert rejected["request_id"] == "crm-invalid-2026-11-26-1"
    assert rejected["state"] == "rejected" and rejected["activities"] == [] and rejected["errors"]
    assert rejected["original_body"] == invalid["body"]


def test_the_sample_batch_is_recorded_in_the_activity_table(invoke, sample_event, simulator, table):
    # Given the committed sample batch (sent from 2026-11-26T10:00:00Z on, one second apart)
    event = sample_event("intake-sqs-batch.json")
    new_subscriber_message_id = event["Records"][4]["messageId"]  # a bare request without request_id
    eventbridge_event_id = json.loads(event["Records"][6]["body"])["id"]  # an EventBridge event without one

    # When the intake handles it
    invoke.intake(event)

    # Then every valid request is recorded under its id (or its fallback id), with one activity per chunk
    requests_ = table.requests()
    assert {
        request_id: (item["status"], item["source_type"], item["tag_ids"], len(item["activities"]), item["received_at"])
        for request_id, item in requests_.items()
    } == {
        "crm-churn-2026-11-26-000123": ("pending", "contact_ids", ["t-churn-risk"], 1, "2026-11-26T10:00:00Z"),
        "crm-list-cleanup-2026-11-26.001": (
            "pending",
            "list_ids",
            ["t-black-friday", "t-cyber-monday"],
            1,
            "2026-11-26T10:00:01Z",
        ),
        "crm:retag:2026-11-26:42": ("pending", "tag_ids", ["t-vip-2025"], 1, "2026-11-26T10:00:02Z"),
        "ops-sweep-2026-11-26": ("pending", "all_active_contacts", ["t-trial"], 1, "2026-11-26T10:00:03Z"),
        new_subscriber_message_id: ("pending", "new_subscriber", ["t-welcome-series"], 1, "2026-11-26T10:00:04Z"),
        "crm-tolerated-2026-11-26-1": ("pending", "all_active_contacts", ["t-legacy"], 1, "2026-11-26T10:00:05Z"),
        eventbridge_event_id: ("pending", "contact_ids", ["t-eventbridge"], 1, "2026-11-26T10:00:06Z"),
        "crm-sns-2026-11-26-7": ("pending", "list_ids", ["t-sns"], 1, "2026-11-26T10:00:07Z"),
        "crm-bulk-2026-11-26-1200": ("pending", "contact_ids", ["t-bulk"], 3, "2026-11-26T10:00:08Z"),
    }
    # And each chunk of the split request points at the activity that carries exactly that chunk
    bulk = requests_["crm-bulk-2026-11-26-1200"]["activities"]
    for index, contacts in enumerate((BULK_CONTACTS[:500], BULK_CONTACTS[500:1000], BULK_CONTACTS[1000:])):
        assert simulator.activities[bulk[str(index)]]["body"]["source"]["contact_ids"] == contacts
    # And every activity Constant Contact created is on the poller's work list, linked to its request
    activities = table.activities()
    assert set(activities) == set(simulator.activities)
    for request_id, item in requests_.items():
        for activity_id in item["activities"].values():
            assert activities[activity_id]["request_ids"] == [request_id]
            assert activities[activity_id]["state"] == "initialized"
            assert activities[activity_id]["due"] == "ACTIVITY"
    # And the invalid request is recorded as rejected, its event already published (no longer due)
    [rejection] = table.rejections()
    assert rejection["request_id"] == "crm-invalid-2026-11-26-1" and rejection["status"] == "rejected"
    assert "due" not in rejection


def test_the_invalid_sample_batch_is_rejected_without_retry_and_without_any_api_call(
    invoke, sample_event, simulator, table
):
    # Given the committed batch of eleven invalid requests
    event = sample_event("intake-invalid.json")

    # When the intake handles it
    response = invoke.intake(event)

    # Then nothing is retried and nothing reached Constant Contact (not even a token refresh)
    assert response == {"batchItemFailures": []}
    assert simulator.calls == []
    # And each record produced exactly one rejected event carrying its body and what is wrong with it
    events = invoke.results()
    assert sorted(result["original_body"] for result in events) == sorted(r["body"] for r in event["Records"])
    for result in events:
        assert result["state"] == "rejected" and result["event_type"] == "untag.rejected"
        assert result["activities"] == [] and result["errors"] and all(isinstance(e, str) for e in result["errors"])
    # And the unreadable ones fall back to their SQS messageId
    by_body = {result["original_body"]: result for result in events}
    for record in event["Records"]:
        if record["body"] in ("remove tag t-1 from c-1 please", '["c-1","t-1"]') or '"rrrr' in record["body"]:
            assert by_body[record["body"]]["request_id"] == record["messageId"]
    # And the table holds the rejections only, all published
    assert table.requests() == {} and table.activities() == {}
    assert len(table.rejections()) == 13 and all("due" not in item for item in table.rejections())

    # When SQS delivers the same batch again
    again = invoke.intake(event)

    # Then it is still not retried, still not sent to Constant Contact, and not reported twice
    assert again == {"batchItemFailures": []}
    assert simulator.calls == []
    assert len(invoke.results()) == 13


# --- transient failures: only the record concerned is retried ---------------------------------------

TRANSIENT_FAULTS = [
    pytest.param({"status": 503}, {}, 1, id="503-service-unavailable"),
    pytest.param({"status": 500}, {}, 1, id="500-server-error"),
    pytest.param({"status": 0, "drop": True}, {}, 1, id="connection-dropped"),
    # The answer comes after the client's read timeout, so the client never sees it: had it waited, the 400
    # would have failed the request for good instead of leaving the record for a retry.
    pytest.param({"status": 400, "delay": 1.0}, {"CC_READ_TIMEOUT_SECONDS": "0.3"}, None, id="read-timeout"),
    # Throttled on the first try and on each of the 3 back-off retries.
    pytest.param({"status": 429, "count": 4}, {}, 4, id="throttled-beyond-the-backoff"),
]


@pytest.mark.parametrize("fault, environment, failed_attempts", TRANSIENT_FAULTS)
def test_a_transient_failure_leaves_the_request_recorded_for_the_next_driver_and_creates_no_duplicate(
    fault, environment, failed_attempts, invoke, sqs_event, simulator, table, monkeypatch
):
    # Given three requests that each need an activity, and Constant Contact failing the first creation
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    event = sqs_event(list_request("r-1", "t-1"), list_request("r-2", "t-2"), list_request("r-3", "t-3"))
    simulator.fail_next("POST", REMOVE_TAGS, **fault)

    # When the intake handles the batch
    response = invoke.intake(event)

    # Then every message is done (each request is recorded); the other two have their activity
    assert failed_ids(response) == []
    assert tags_of_created_activities(simulator) == [["t-2"], ["t-3"]]
    if failed_attempts is not None:
        assert simulator.count("POST", REMOVE_TAGS) - simulator.count("POST", REMOVE_TAGS, 201) == failed_attempts
    waiting = table.request("r-1")
    assert waiting["activities"] == {} and waiting["status"] == "creating" and waiting["due"] == "CREATE"

    # When the poller's schedule fires
    invoke.poller()

    # Then it creates the missing activity, and every request has exactly one: none was created twice
    assert tags_of_created_activities(simulator) == [["t-1"], ["t-2"], ["t-3"]]
    assert simulator.count("POST", REMOVE_TAGS, 201) == 3
    for request_id in ("r-1", "r-2", "r-3"):
        item = table.request(request_id)
        assert item["status"] == "pending" and len(item["activities"]) == 1
        assert "due" not in item and "source_ids" not in item  # off the creation list, its plan dropped


# --- answers that are not worth a retry --------------------------------------------------------------


def test_a_request_constant_contact_refuses_fails_at_once_and_is_not_retried(invoke, sqs_event, simulator):
    # Given Constant Contact refusing the activity with a 400
    event = sqs_event(list_request("r-refused", "t-gone"))
    simulator.fail_next(
        "POST",
        REMOVE_TAGS,
        400,
        body=[{"error_key": "contacts.api.validation.error", "error_message": "tag t-gone does not exist"}],
    )

    # When the intake handles the request
    response = invoke.intake(event)

    # Then the record is not retried and the request ends failed, with Constant Contact's error in the event
    assert failed_ids(response) == []
    [result] = invoke.results()
    assert result["request_id"] == "r-refused"
    assert result["state"] == "failed" and result["event_type"] == "untag.failed"
    assert result["activities"] == []
    assert any("400" in error and "tag t-gone does not exist" in error for error in result["errors"]), result
    assert simulator.count("POST", REMOVE_TAGS) == 1

    # When SQS delivers the same message again (at least once delivery)
    assert failed_ids(invoke.intake(event)) == []

    # Then nothing more is asked of Constant Contact and nothing more is published
    assert simulator.count("POST", REMOVE_TAGS) == 1
    assert len(invoke.results()) == 1


def test_a_split_request_with_one_refused_chunk_fails_and_lists_the_activity_that_ran(invoke, sqs_event, simulator):
    # Given a request of 600 contacts (two activities) whose first chunk Constant Contact refuses
    contacts = [f"c-{number}" for number in range(600)]
    event = sqs_event({"request_id": "r-half-refused", "source": {"contact_ids": contacts}, "tag_ids": ["t-1"]})
    simulator.fail_next("POST", REMOVE_TAGS, 400, body=[{"error_key": "bad", "error_message": "refused chunk"}])

    # When the intake handles it and the poller follows the activity that was created
    assert failed_ids(invoke.intake(event)) == []
    assert invoke.results() == []  # the other activity is still running
    invoke.poller()
    invoke.poller()

    # Then the request ends failed, listing the activity that ran and the refusal
    [result] = invoke.results()
    [activity_id] = simulator.activities
    assert result["state"] == "failed"
    assert [(a["activity_id"], a["state"], a["items_total_count"]) for a in result["activities"]] == [
        (activity_id, "completed", 100)
    ]
    assert any("refused chunk" in error for error in result["errors"]), result
    assert simulator.count("POST", REMOVE_TAGS) == 2


# --- tokens ------------------------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_once_and_the_new_tokens_are_stored(
    invoke, sqs_event, simulator, stack, tokens
):
    # Given an access token Constant Contact no longer accepts
    simulator.expire_access_tokens()

    # When the intake handles a request
    response = invoke.intake(sqs_event(list_request("r-1", "t-1")))

    # Then one 401, one refresh, and the activity is created with the new token
    assert failed_ids(response) == []
    assert simulator.count("POST", REMOVE_TAGS, 401) == 1
    assert simulator.token_refreshes == 1
    assert simulator.count("POST", REMOVE_TAGS, 201) == 1
    # And the secret now holds the new tokens (rotating refresh tokens: the old one is void)
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=stack.secret_id)["SecretString"])
    assert secret["access_token"] != tokens["access_token"]
    assert secret["refresh_token"] != tokens["refresh_token"]
    assert (secret["client_id"], secret["client_secret"]) == (tokens["client_id"], tokens["client_secret"])
    assert isinstance(secret["expires_at"], int)
    # And the stored refresh token is the one Constant Contact now honours
    simulator.token_rate_limit_per_second = None  # this check's own refresh comes right after the service's
    answer = requests.post(
        simulator.token_url,
        auth=(secret["client_id"], secret["client_secret"]),
        timeout=5,
        data={"grant_type": "refresh_token", "refresh_token": secret["refresh_token"]},
    )
    assert answer.status_code == 200, answer.text


def test_tokens_refused_even_after_a_refresh_keep_the_requests_for_the_next_driver(invoke, sqs_event, simulator, table):
    # Given Constant Contact refusing the token twice in a row (before and after the refresh)
    event = sqs_event(list_request("r-1", "t-1"), list_request("r-2", "t-2"))
    simulator.fail_next("POST", REMOVE_TAGS, 401, count=2)

    # When the intake handles the batch
    response = invoke.intake(event)

    # Then it refreshed once and stopped calling; the requests are recorded, so no message is retried
    assert failed_ids(response) == []
    assert simulator.token_refreshes == 1
    assert simulator.count("POST", REMOVE_TAGS) == 2 and simulator.activities == {}
    assert {table.request(r)["status"] for r in ("r-1", "r-2")} == {"creating"}

    # When the poller runs and the tokens are accepted
    invoke.poller()

    # Then each request gets its activity, once
    assert tags_of_created_activities(simulator) == [["t-1"], ["t-2"]]


# --- the daily quota ---------------------------------------------------------------------------------


def test_a_spent_daily_quota_keeps_every_request_recorded_and_stops_both_functions_calling(
    invoke, sqs_event, simulator, table
):
    # Given an activity already running, then the day's quota spent
    invoke.intake(sqs_event(list_request("r-0", "t-0")))
    simulator.exhaust_quota()
    batch = sqs_event(list_request("r-1", "t-1"), list_request("r-2", "t-2"), "not a request")
    before = time.time()

    # When the intake handles a batch
    response = invoke.intake(batch)

    # Then every message is done: the valid requests are recorded, the invalid one is rejected
    assert failed_ids(response) == []
    assert [result["state"] for result in invoke.results()] == ["rejected"]
    assert simulator.count("POST", REMOVE_TAGS, 429) == 1
    assert {table.request(r)["status"] for r in ("r-1", "r-2")} == {"creating"}
    # And the block is stored until the quota resets at 00:00 UTC
    assert table.quota_blocked_until() in {next_utc_midnight(before), next_utc_midnight(time.time())}
    calls = len(simulator.calls)

    # When a new request arrives, and the poller's schedule fires
    later = sqs_event(list_request("r-3", "t-3"))
    assert failed_ids(invoke.intake(later)) == []
    report = invoke.poller()

    # Then the request is recorded and the poller skips its run, without a single API call
    assert report["skipped"] == "daily quota spent" and report["api_gets"] == 0
    assert len(simulator.calls) == calls
    assert tags_of_created_activities(simulator) == [["t-0"]]

    # When the quota is renewed (the block has passed) and the poller runs again
    simulator.renew_quota()
    boto3.client("dynamodb").put_item(
        TableName=table.name, Item={"pk": {"S": "CONTROL#quota"}, "sk": {"S": "CONTROL"}, "blocked_until": {"N": "0"}}
    )
    invoke.poller()

    # Then every waiting request gets its activity, once
    assert tags_of_created_activities(simulator) == [["t-0"], ["t-1"], ["t-2"], ["t-3"]]


# --- the Lambda time budget --------------------------------------------------------------------------


def test_no_call_is_started_once_the_time_budget_is_spent(invoke, sqs_event, simulator, table):
    # Given an invocation that starts with its 60 s but has only 50 ms left once the batch is read
    event = sqs_event(list_request("r-1", "t-1"), list_request("r-2", "t-2"))
    running_out = ScriptedContext("untag-intake", 60, remaining_ms=[60_000, 50])

    # When the intake handles the batch
    response = invoke.intake(event, running_out)

    # Then every record is left for another try and no call to Constant Contact was started
    assert failed_ids(response) == message_ids(event)
    assert simulator.calls == []

    # When SQS delivers them again to an invocation with time to spare
    retry = invoke.intake(event)

    # Then each request gets its activity at once (the interrupted claims do not block it), once
    assert failed_ids(retry) == []
    assert tags_of_created_activities(simulator) == [["t-1"], ["t-2"]]


def test_no_call_is_started_by_an_invocation_that_starts_with_almost_no_time_left(invoke, sqs_event, simulator):
    # Given an invocation whose context reports only 200 ms left from the start
    event = sqs_event(list_request("r-1", "t-1"))
    tiny = ScriptedContext("untag-intake", 60, remaining_ms=[200])

    # When the intake handles the batch
    response = invoke.intake(event, tiny)

    # Then the record is left for another try and no call to Constant Contact was started
    assert failed_ids(response) == message_ids(event)
    assert simulator.calls == []
