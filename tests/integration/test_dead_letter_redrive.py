"""Poison messages: after maxReceiveCount they sit in the DLQ; `untag dlq` lists them and redrives them."""

import json

from untag_operator.cli import main as untag_main
from untag_operator.dlq import peek, redrive


def test_a_message_that_keeps_failing_lands_in_the_dlq_and_redrive_finishes_it(
    pipeline, simulator, stack, capsys, monkeypatch, iam_calls, tmp_path
):
    # Given a request without request_id that the intake cannot record for a long time (its table is
    # unreachable: once a request is recorded its message is done, whatever Constant Contact says)
    body = json.dumps({"source": {"contact_ids": ["c1"]}, "tag_ids": ["t1"]})
    monkeypatch.setenv("ACTIVITY_TABLE_NAME", "a-table-that-does-not-exist")
    pipeline.submit([body])
    max_receive = int(
        json.loads(
            pipeline.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["RedrivePolicy"])["Attributes"][
                "RedrivePolicy"
            ]
        )["maxReceiveCount"]
    )
    # When the event source mapping has delivered it maxReceiveCount times
    for _ in range(max_receive + 1):
        pipeline.intake_once()
    # Then it is in the DLQ, not in the intake queue, and no result event claims it finished
    assert pipeline.queue_depth() == 0 and pipeline.queue_depth(stack.dlq_url) == 1
    [message] = peek(pipeline.sqs, stack.dlq_url)
    assert message["Body"] == body
    first_id = message["MessageId"]
    # (the intake's role allows its own table only: AWS denies every call on the other one)
    assert {resource.rsplit("/", 1)[-1] for call in iam_calls.take_denied() for resource in call.resources} == {
        "a-table-that-does-not-exist"
    }
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"DeadLetterQueueUrl": stack.dlq_url, "IntakeQueueUrl": stack.queue_url}))
    assert untag_main(["--outputs", str(outputs), "--region", "us-east-1", "dlq", "list"]) == 0
    assert first_id in capsys.readouterr().out

    # When the operator redrives it after the table is back
    monkeypatch.setenv("ACTIVITY_TABLE_NAME", stack.table_name)
    outcome = redrive(pipeline.sqs, stack.dlq_url, stack.queue_url)
    assert outcome.moved == 1 and outcome.left == {}
    assert pipeline.run_until_settled(1, timeout=30)
    # Then it finishes under the request id it was first known by, with exactly one activity
    [event] = pipeline.results
    assert event["state"] == "completed" and event["request_id"] == first_id
    assert simulator.count("POST", status=201) == 1 and simulator.count("POST") == 1
    assert pipeline.queue_depth(stack.dlq_url) == 0
