"""Fixtures for the handler-level tests: Lambda events and contexts, invoking the two functions, reading the table.

The handlers are the ones template.yaml names, loaded by the ``pipeline`` fixture (moto + the
Constant Contact simulator, environment as deployed). These tests call them directly with the
exact Lambda event shapes, so that a test decides what each invocation sees.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

from devkit.pipeline import LambdaContext

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def load_event(file_name: str) -> dict[str, Any]:
    """One of the committed sample events (events/*.json)."""
    return json.loads((EVENTS_DIR / file_name).read_text(encoding="utf-8"))


def _sqs_record(body: str, message_id: str, queue_arn: str) -> dict[str, Any]:
    """One record as Lambda's SQS event source mapping delivers it."""
    sent_ms = int(time.time() * 1000)
    return {
        "messageId": message_id,
        "receiptHandle": "AQEB" + hashlib.sha256(message_id.encode()).hexdigest(),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent_ms),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": str(sent_ms + 5),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


@pytest.fixture
def sqs_event(stack) -> Callable[..., dict[str, Any]]:
    """Build an SQS batch event from request bodies (dicts are serialised); each record gets a fresh messageId."""

    def build(*bodies: Any) -> dict[str, Any]:
        return {
            "Records": [
                _sqs_record(body if isinstance(body, str) else json.dumps(body), str(uuid.uuid4()), stack.queue_arn)
                for body in bodies
            ]
        }

    return build


class Invocations:
    """Invoke the intake and the poller as Lambda does; collect the result events a subscriber receives."""

    def __init__(self, pipeline, table: Table):
        self.pipeline = pipeline
        self.table = table
        self.poller_event = load_event("poller-scheduled.json")

    def intake(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return self.pipeline.intake(event, context or LambdaContext("untag-intake", self.pipeline.intake_timeout))

    def poller(self) -> dict[str, Any]:
        """One scheduled run, once every activity on the work list is due (as the 1-minute schedule ensures)."""
        due_at = max((item["due_at"] for item in self.table.items() if item.get("due") == "ACTIVITY"), default=0)
        wait = due_at - time.time()
        assert wait < 2, f"an activity is scheduled {wait:.1f} s ahead: the tests expect polls seconds apart"
        if wait > 0:
            time.sleep(wait)  # the poll interval grows with an activity's age: here a fraction of a second
        return self.pipeline.poller(self.poller_event, LambdaContext("untag-poller", self.pipeline.poller_timeout))

    def results(self) -> list[dict[str, Any]]:
        return self.pipeline.collect_results()


@pytest.fixture
def invoke(pipeline, table) -> Invocations:
    return Invocations(pipeline, table)


@pytest.fixture
def sample_event() -> Callable[[str], dict[str, Any]]:
    """Load one of the committed sample events by file name."""
    return load_event


class Table:
    """The activity table as the functions left it (read with plain boto3, not with the product's store)."""

    def __init__(self, name: str):
        self.name = name
        self._client = boto3.client("dynamodb")
        self._deserializer = TypeDeserializer()

    def _plain(self, value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {key: self._plain(item) for key, item in value.items()}
        if isinstance(value, (list, set)):
            return [self._plain(item) for item in value]
        return value

    def _load(self, item: dict[str, Any]) -> dict[str, Any]:
        return {key: self._plain(self._deserializer.deserialize(value)) for key, value in item.items()}

    def items(self) -> list[dict[str, Any]]:
        items, arguments = [], {"TableName": self.name, "ConsistentRead": True}
        while True:
            answer = self._client.scan(**arguments)
            items.extend(self._load(item) for item in answer["Items"])
            if "LastEvaluatedKey" not in answer:
                return items
            arguments["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        answer = self._client.get_item(TableName=self.name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
        return self._load(answer["Item"]) if "Item" in answer else None

    def request(self, request_id: str) -> dict[str, Any] | None:
        return self.get(f"REQUEST#{request_id}", "REQUEST")

    def activity(self, activity_id: str) -> dict[str, Any] | None:
        return self.get(f"ACTIVITY#{activity_id}", "ACTIVITY")

    def requests(self) -> dict[str, dict[str, Any]]:
        return {item["request_id"]: item for item in self.items() if item["sk"] == "REQUEST"}

    def activities(self) -> dict[str, dict[str, Any]]:
        return {item["activity_id"]: item for item in self.items() if item["sk"] == "ACTIVITY"}

    def rejections(self) -> list[dict[str, Any]]:
        return [item for item in self.items() if item["sk"].startswith("REJECTED#")]

    def quota_blocked_until(self) -> float:
        item = self.get("CONTROL#quota", "CONTROL")
        return float(item["blocked_until"]) if item else 0.0


@pytest.fixture
def table(stack) -> Table:
    return Table(stack.table_name)
