"""Publications are batched as SNS allows: at most 10 entries and 256 KiB in all per PublishBatch."""

from __future__ import annotations

import json

from untag.aws_limits import SNS_BATCH_MAX_BYTES, sns_entry_bytes
from untag.publisher import SnsPublisher
from untag.records import Publication


class RecordingSns:
    def __init__(self, refuse: set[str] = frozenset()):
        self.batches: list[list[dict]] = []
        self.refuse = refuse

    def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[dict]) -> dict:
        self.batches.append(PublishBatchRequestEntries)
        ok = [{"Id": e["Id"]} for e in PublishBatchRequestEntries if e["Id"] not in self.refuse]
        failed = [
            {"Id": e["Id"], "Code": "InternalError"} for e in PublishBatchRequestEntries if e["Id"] in self.refuse
        ]
        return {"Successful": ok, "Failed": failed}


def event(n: int, padding: int) -> Publication:
    body = {"request_id": f"r-{n}", "event_type": "untag.completed", "state": "completed", "pad": "x" * padding}
    return Publication(f"r-{n}", json.dumps(body), "untag.completed", "completed")


def test_large_events_are_batched_by_bytes_and_small_ones_by_ten():
    sns = RecordingSns()
    events = [event(n, 100_000) for n in range(5)] + [event(n, 10) for n in range(5, 30)]
    accepted = SnsPublisher(lambda: sns, "arn:topic").publish(events)
    assert all(accepted)
    for batch in sns.batches:
        assert len(batch) <= 10
        assert sum(sns_entry_bytes(e["Message"], e["MessageAttributes"]) for e in batch) <= SNS_BATCH_MAX_BYTES
    assert sorted(int(e["Id"]) for batch in sns.batches for e in batch) == list(range(30))
    assert [len(batch) for batch in sns.batches] == [2, 2, 10, 10, 6]


def test_an_event_sns_refuses_is_reported_not_accepted():
    sns = RecordingSns(refuse={"1"})
    assert SnsPublisher(lambda: sns, "arn:topic").publish([event(0, 1), event(1, 1)]) == [True, False]


def test_an_event_over_the_message_limit_is_never_sent():
    sns = RecordingSns()
    assert SnsPublisher(lambda: sns, "arn:topic").publish([event(0, 300_000), event(1, 1)]) == [False, True]
    assert [len(batch) for batch in sns.batches] == [1]
