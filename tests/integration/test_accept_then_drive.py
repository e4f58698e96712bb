"""Accept first, then drive: once a request is recorded its message is done, and its activities are
created from the table by whichever function runs next, at the rate limit, whatever SQS does."""

from __future__ import annotations

import json
from dataclasses import dataclass

from devkit.pipeline import LambdaContext

REMOVE_TAGS = "/v3/activities/contacts_taggings_remove"


def failed_ids(response: dict) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


@dataclass
class RunsOutAfterPosts(LambdaContext):
    """A Lambda context with plenty of time until Constant Contact has seen ``posts`` POSTs, then almost none."""

    simulator: object = None
    posts: int = 0

    def get_remaining_time_in_millis(self) -> int:
        return 60_000 if self.simulator.count("POST", REMOVE_TAGS) < self.posts else 10


def big_request(request_id: str, contacts: int) -> dict:
    return {
        "request_id": request_id,
        "source": {"contact_ids": [f"c-{n}" for n in range(contacts)]},
        "tag_ids": ["t-1"],
    }


def test_a_request_bigger_than_one_invocation_is_done_for_sqs_and_finished_by_the_poller(
    invoke, sqs_event, simulator, table
):
    # Given a request of six activities and an intake invocation that has time for two POSTs only
    event = sqs_event(big_request("r-big", 3000))
    context = RunsOutAfterPosts("untag-intake", 60, simulator=simulator, posts=2)

    # When the intake handles it
    response = invoke.intake(event, context)

    # Then its message is done (SQS will not deliver it again), with two activities created and the plan kept
    assert failed_ids(response) == []
    record = table.request("r-big")
    assert record["status"] == "creating" and len(record["activities"]) == 2
    assert record["due"] == "CREATE" and record["lease_until"] == 0  # let go: due for the next driver at once
    assert len(record["source_ids"]) == 3000

    # When the poller's schedule fires (creating the rest, then following the activities to their end)
    invoke.poller()
    invoke.poller()
    invoke.poller()

    # Then the other four activities are created, none twice, and the request finishes
    assert simulator.count("POST", REMOVE_TAGS, 201) == 6
    bodies = sorted(json.dumps(a["body"]["source"]["contact_ids"][:1]) for a in simulator.activities.values())
    assert len(set(bodies)) == 6
    [result] = invoke.results()
    assert result["request_id"] == "r-big" and result["state"] == "completed" and len(result["activities"]) == 6


def test_a_request_over_the_activity_cap_is_rejected_naming_the_cap(invoke, sqs_event, simulator, monkeypatch):
    # Given a cap of 3 activities per request
    monkeypatch.setenv("MAX_ACTIVITIES_PER_REQUEST", "3")

    # When a request needing 4 arrives beside one needing 3
    response = invoke.intake(sqs_event(big_request("r-4", 2000), big_request("r-3", 1500)))

    # Then the first is rejected, saying so, and never reaches Constant Contact; the second goes ahead
    assert failed_ids(response) == []
    [rejected] = [event for event in invoke.results() if event["state"] == "rejected"]
    assert rejected["request_id"] == "r-4"
    assert rejected["errors"] == [
        "request: needs 4 activities, more than the cap of 3 activities per request "
        "(MAX_ACTIVITIES_PER_REQUEST); split it into smaller requests"
    ]
    assert simulator.count("POST", REMOVE_TAGS) == 3


def test_a_request_recorded_while_the_quota_is_spent_waits_in_the_table_not_in_the_queue(pipeline, simulator, stack):
    # Given the daily quota spent
    simulator.exhaust_quota()
    pipeline.submit([json.dumps(big_request("r-q", 1))])

    # When the event source mapping delivers the message
    pipeline.intake_once()

    # Then the message is done at once: nothing waits in the intake queue or reaches the DLQ
    assert pipeline.queue_depth() == 0 and pipeline.queue_depth(stack.dlq_url) == 0
    assert pipeline.retried_records == 0


def test_one_refused_contact_among_merged_requests_fails_only_its_own_request(invoke, sqs_event, simulator):
    # Given eight single-contact requests removing the same tag (merged into one activity), one with a bad contact
    simulator.refused_contacts.add("c-bad")
    bodies = [{"request_id": f"r-{n}", "source": {"contact_ids": [f"c-{n}"]}, "tag_ids": ["t-1"]} for n in range(7)]
    bodies.insert(3, {"request_id": "r-bad", "source": {"contact_ids": ["c-bad"]}, "tag_ids": ["t-1"]})

    # When the intake handles them and the poller follows the activities
    assert failed_ids(invoke.intake(sqs_event(*bodies))) == []
    for _ in range(3):
        invoke.poller()

    # Then the shared activity is split until the refusal is alone: only r-bad fails, with Constant Contact's words
    results = {event["request_id"]: event for event in invoke.results()}
    assert results["r-bad"]["state"] == "failed" and results["r-bad"]["activities"] == []
    assert any("contact c-bad cannot be updated" in error for error in results["r-bad"]["errors"])
    assert {results[f"r-{n}"]["state"] for n in range(7)} == {"completed"}
    created = [a["body"]["source"]["contact_ids"] for a in simulator.activities.values()]
    assert sorted(c for contacts in created for c in contacts) == sorted(f"c-{n}" for n in range(7))
    assert simulator.count("POST", REMOVE_TAGS, 400) <= 1 + 2 * 3  # a bisection: a few refusals, not one per request


def test_a_large_request_is_recorded_refused_and_reported_within_aws_limits(invoke, sqs_event, simulator, table):
    # Given a 100 KB request of 40 activities (20 chunks of 500 contacts x 2 of tags), all refused by Constant Contact
    contacts = [f"c{n:06d}" for n in range(10_000)]
    body = json.dumps(
        {
            "request_id": "r-large",
            "source": {"contact_ids": contacts},
            "tag_ids": [f"t{n:05d}" for n in range(51)],
            "metadata": {"pad": "m" * 4000},
        }
    )
    assert len(body.encode()) > 100_000
    simulator.refused_contacts.update(contacts[::500])

    # When the intake handles it (under AWS's item, message and batch limits: tests/aws_rules)
    response = invoke.intake(sqs_event(body))
    for _ in range(3):
        invoke.poller()

    # Then every chunk's refusal is recorded, the request fails once, and its record drops its plan
    assert failed_ids(response) == []
    assert simulator.count("POST", REMOVE_TAGS, 400) == 40
    [result] = invoke.results()
    assert result["state"] == "failed" and len(result["errors"]) == 40
    assert "cannot be updated" in result["errors"][0]
    record = table.request("r-large")
    assert record["status"] == "finished" and "source_ids" not in record
