"""Creates that got no clear answer: counted, listed for operators, and never tried a third time."""

from __future__ import annotations

import json

import pytest

from untag_operator.cli import main as untag_main

REMOVE_TAGS = "/v3/activities/contacts_taggings_remove"


def request(request_id: str) -> dict:
    return {"request_id": request_id, "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 503}, id="5xx-after-creating"),
        pytest.param({"status": 0, "drop": True}, id="dropped-after-creating"),
    ],
)
def test_an_answer_lost_after_constant_contact_created_the_activity_is_counted_and_listed(
    fault, invoke, sqs_event, simulator, stack, capsys, tmp_path
):
    # Given Constant Contact creating the activity but its answer lost
    simulator.fail_next("POST", REMOVE_TAGS, carried_out=True, **fault)

    # When the intake handles the request and the poller retries it
    invoke.intake(sqs_event(request("r-1")))
    invoke.poller()

    # Then the retry made a second activity (no idempotency key: unavoidable), and only one is followed
    assert len(simulator.activities) == 2
    capsys.readouterr()
    # And the operator can list the ambiguous create, with its request and chunk
    path = tmp_path / "outputs.json"
    path.write_text(
        json.dumps(
            {
                "IntakeQueueUrl": stack.queue_url,
                "ActivityTableName": stack.table_name,
                "ResultTopicArn": stack.topic_arn,
                "DeadLetterQueueUrl": stack.dlq_url,
            }
        )
    )
    assert untag_main(["--outputs", str(path), "ambiguous", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["request_id"] == "r-1" and listed["chunk"] == 0 and listed["error"]


def test_a_chunk_whose_creates_twice_got_no_answer_is_not_tried_a_third_time(invoke, sqs_event, simulator, table):
    # Given two creates in a row whose answers are lost after Constant Contact carried them out
    simulator.fail_next("POST", REMOVE_TAGS, 503, count=2, carried_out=True)

    # When the intake and then the poller try
    invoke.intake(sqs_event(request("r-2")))
    invoke.poller()
    invoke.poller()

    # Then there is no third create: the request fails, saying an activity may exist
    assert simulator.count("POST", REMOVE_TAGS) == 2
    [event] = invoke.results()
    assert event["state"] == "failed"
    assert "not tried again" in event["errors"][0] and "untag ambiguous" in event["errors"][0]
    assert len(table.get("REQUEST#r-2", "AMBIGUOUS#0#2") or {}) > 0


def test_a_refused_connection_is_not_ambiguous(invoke, sqs_event, simulator, table, monkeypatch):
    # Given an API root nothing listens on (the request never left): a plain transient failure
    monkeypatch.setenv("CC_API_BASE_URL", "http://127.0.0.1:9/v3")
    invoke.intake(sqs_event(request("r-3")))
    assert table.get("REQUEST#r-3", "AMBIGUOUS#0#1") is None
    assert table.request("r-3")["status"] == "creating"
