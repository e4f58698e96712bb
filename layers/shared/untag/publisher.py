"""The result-event publisher: SNS PublishBatch, batched by count and by bytes, with the filter attributes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from untag.aws_limits import SNS_BATCH_MAX_BYTES, SNS_BATCH_MAX_ENTRIES, SNS_MESSAGE_MAX_BYTES, sns_entry_bytes
from untag.observability import count, logger
from untag.records import Publication
from untag.result_event import attributes


class SnsPublisher:
    def __init__(self, client_factory: Callable[[], Any], topic_arn: str):
        self._client_factory = client_factory
        self._topic_arn = topic_arn

    def publish(self, publications: Sequence[Publication]) -> list[bool]:
        """Publish each stored event as stored; returns, per event, whether SNS accepted it (failures stay due)."""
        accepted = [False] * len(publications)
        entries = []
        for position, publication in enumerate(publications):
            message, message_attributes = publication.event, attributes(publication.event_type, publication.state)
            size = sns_entry_bytes(message, message_attributes)
            if size > SNS_MESSAGE_MAX_BYTES:  # result_event.fit_in_one_message prevents it; never send what SNS refuses
                count("ResultEventTooLarge")
                logger.error(
                    "result event over SNS's message size; not published",
                    extra={"request_id": publication.request_id, "bytes": size},
                )
                continue
            entries.append(
                (position, {"Id": str(position), "Message": message, "MessageAttributes": message_attributes}, size)
            )
        for batch in _batches(entries):
            try:
                answer = self._client_factory().publish_batch(
                    TopicArn=self._topic_arn, PublishBatchRequestEntries=[entry for _, entry, _ in batch]
                )
            except Exception as error:  # the events stay due; the next poller run publishes them
                logger.warning("SNS publish failed; will retry", extra={"error": type(error).__name__})
                continue
            for entry in answer.get("Successful", ()):
                accepted[int(entry["Id"])] = True
            for entry in answer.get("Failed", ()):
                logger.warning("SNS refused an event; will retry", extra={"code": entry.get("Code")})
        return accepted


def _batches(entries: list[tuple[int, dict[str, Any], int]]) -> Iterator[list[tuple[int, dict[str, Any], int]]]:
    """PublishBatch calls of at most 10 entries and 256 KiB in all (AWS's two batch limits)."""
    batch: list[tuple[int, dict[str, Any], int]] = []
    total = 0
    for entry in entries:
        if batch and (len(batch) == SNS_BATCH_MAX_ENTRIES or total + entry[2] > SNS_BATCH_MAX_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(entry)
        total += entry[2]
    if batch:
        yield batch
