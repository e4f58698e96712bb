"""What each request should produce, and which result events have arrived: the table tells about the others."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Expected:
    """One result event the run waits for, and the table record that tracks it until then."""

    key: tuple[str, ...]  # ("request", request_id) or ("rejected", request_id, message body)
    request_id: str
    record_key: dict[str, str]

    @property
    def rejected(self) -> bool:
        return self.key[0] == "rejected"


def expected_events(bodies: list[str], message_ids: list[str]) -> dict[tuple[str, ...], Expected]:
    """The distinct result events the service owes for these messages (read with the service's own reader).

    A valid request is finished once per request id (a duplicate delivery adds nothing); a rejected
    message once per distinct body under its id. A request without ``request_id`` is known by its
    message id, as the intake does.
    """
    from untag.request import Rejection, read_request
    from untag.result_event import rejection_key
    from untag.store import request_key

    expected: dict[tuple[str, ...], Expected] = {}
    for body, message_id in zip(bodies, message_ids, strict=True):
        outcome = read_request(body, message_id)
        if isinstance(outcome, Rejection):
            key: tuple[str, ...] = ("rejected", outcome.request_id, body)
            # The intake stores a rejection under REQUEST#<id> / REJECTED#<key> (untag.intake._reject).
            record = {"pk": f"REQUEST#{outcome.request_id}", "sk": f"REJECTED#{rejection_key(outcome)}"}
        else:
            key = ("request", outcome.request_id)
            record = request_key(outcome.request_id)
        expected.setdefault(key, Expected(key, outcome.request_id, record))
    return expected


def event_key(event: dict[str, Any]) -> tuple[str, ...]:
    if event.get("state") == "rejected":
        return ("rejected", str(event.get("request_id")), str(event.get("original_body")))
    return ("request", str(event.get("request_id")))


class Tracker:
    """Which expected result events have arrived, and what the activity table says of the others.

    Thread-safe: the progress ticker reads its counts while the main thread updates it.
    """

    def __init__(self, expected: dict[tuple[str, ...], Expected], table_name: str, dynamodb: Any):
        self.expected = expected
        self.events: dict[tuple[str, ...], dict[str, Any]] = {}
        self.records: dict[tuple[str, ...], dict[str, Any] | None] = dict.fromkeys(expected)
        self.unexpected = 0  # events of requests this run did not send (other producers, earlier runs)
        self._table = table_name
        self._dynamodb = dynamodb
        self._lock = threading.Lock()
        self._taken = 0
        self._seen_event_ids: set[str] = set()

    def take(self, results: list[dict[str, Any]]) -> None:
        """Match the result events collected since the last call."""
        with self._lock:
            for event in results[self._taken :]:
                key = event_key(event)
                if event.get("event_id") in self._seen_event_ids:
                    continue  # SNS delivers at least once; the service may publish an outcome again
                if key in self.expected and key not in self.events:
                    self.events[key] = event
                else:
                    self.unexpected += 1
                self._seen_event_ids.add(event.get("event_id"))
            self._taken = len(results)

    def refresh(self, keys: list[tuple[str, ...]] | None = None, *, settled_too: bool = False) -> None:
        """Read the table records of the requests still without an event (100 per BatchGetItem).

        Only those not yet read or still being created, unless ``settled_too``: a pending request's
        activities no longer change, so the progress line does not need it read again.
        """
        wanted = (
            keys
            if keys is not None
            else [
                key
                for key in self.missing
                if settled_too or (self.records.get(key) or {}).get("status", "creating") in ("creating", "resolving")
            ]
        )
        by_record = {(self.expected[key].record_key["pk"], self.expected[key].record_key["sk"]): key for key in wanted}
        found = self._read(list(by_record))
        with self._lock:
            for record_id, key in by_record.items():
                self.records[key] = found.get(record_id)

    def _read(self, record_ids: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(record_ids), 100):
            request = {
                self._table: {
                    "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in record_ids[start : start + 100]],
                    "ProjectionExpression": "pk, sk, #status, activities",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ConsistentRead": True,
                }
            }
            for attempt in range(5):
                answer = self._dynamodb.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, ()):
                    record = {name: deserializer.deserialize(value) for name, value in item.items()}
                    found[(record["pk"], record["sk"])] = record
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
        return found

    @property
    def missing(self) -> list[tuple[str, ...]]:
        with self._lock:
            return [key for key in self.expected if key not in self.events]

    @property
    def complete(self) -> bool:
        with self._lock:
            return len(self.events) == len(self.expected)

    def lost(self) -> list[tuple[str, ...]]:
        """Requests without an event that the table has never heard of (meaningful once the queue is empty)."""
        return [key for key in self.missing if self.records.get(key) is None]

    def counts(self) -> dict[str, int]:
        with self._lock:
            records, events = list(self.records.items()), list(self.events.values())
            known = [key for key, record in records if record or key in self.events]  # the intake has read it
        accepted = sum(1 for key in known if not self.expected[key].rejected)
        activities = {
            str(activity_id)
            for _, record in records
            if record
            for activity_id in (record.get("activities") or {}).values()
        }
        activities |= {activity["activity_id"] for event in events for activity in event.get("activities") or ()}
        return {
            "total": len(self.expected),
            "accepted": accepted,
            "rejected": len(known) - accepted,
            "activities": len(activities),
            "finished": len(events),
        }

    def waiting_reasons(self) -> Counter[str]:
        """Why each request without an event is still open, from its table record."""
        reasons: Counter[str] = Counter()
        for key in self.missing:
            record = self.records.get(key)
            status = (record or {}).get("status")
            if record is None:
                reasons["not accepted from the intake queue"] += 1
            elif status == "resolving":
                reasons["tag names or e-mail addresses being resolved"] += 1
            elif status == "creating":
                reasons["activities still being created"] += 1
            elif status == "pending":
                reasons["waiting for Constant Contact to finish its activities"] += 1
            else:
                reasons["finished, result event not published yet"] += 1
        return reasons
