"""The result-event publisher: SNS, ten events per call, with the ``event_type``/``state`` attributes."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from untag.observability import logger
from untag.result_event import message_attributes

SNS_BATCH = 10


class SnsPublisher:
    def __init__(self, client_factory: Callable[[], Any], topic_arn: str):
        self._client_factory = client_factory
        self._topic_arn = topic_arn

    def publish(self, events: Sequence[dict[str, Any]]) -> list[bool]:
        """Publish each event; returns, per event, whether SNS accepted it (failures stay due)."""
        accepted = [False] * len(events)
        for start in range(0, len(events), SNS_BATCH):
            batch = events[start : start + SNS_BATCH]
            try:
                answer = self._client_factory().publish_batch(
                    TopicArn=self._topic_arn,
                    PublishBatchRequestEntries=[
                        {
                            "Id": str(position),
                            "Message": json.dumps(event),
                            "MessageAttributes": message_attributes(event),
                        }
                        for position, event in enumerate(batch)
                    ],
                )
            except Exception as error:  # the events stay due; the next poller run publishes them
                logger.warning("SNS publish failed; will retry", extra={"error": type(error).__name__})
                continue
            for entry in answer.get("Successful", ()):
                accepted[start + int(entry["Id"])] = True
            for entry in answer.get("Failed", ()):
                logger.warning("SNS refused an event; will retry", extra={"code": entry.get("Code")})
        return accepted
