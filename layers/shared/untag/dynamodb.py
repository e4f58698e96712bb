"""DynamoDB's plumbing shared by the table's two adapters (``untag.store``, ``untag.controls``):
attribute-value conversion, work-list moments, conditional-write failures, batched reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from untag.aws_limits import DYNAMODB_BATCH_GET_MAX_KEYS, DYNAMODB_BATCH_WRITE_MAX_ITEMS

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def dump(item: dict[str, Any]) -> dict[str, Any]:
    """A plain item (floats, tuples) as DynamoDB attribute values."""
    return {key: _serializer.serialize(_dynamo_value(value)) for key, value in item.items()}


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, (list, tuple)):
        return [_dynamo_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _dynamo_value(item) for key, item in value.items()}
    return value


def load(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values as a plain item (numbers as int or float)."""
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def moment(epoch: float) -> float:
    """A point in time on a work list: epoch seconds to the millisecond (whole seconds would hold work back)."""
    return round(epoch, 3)


def condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def batch_get(
    db: Any, table: str, keys: list[dict[str, str]], sleep: Callable[[float], None] = time.sleep
) -> list[dict[str, Any]]:
    """Consistent reads of many items, 100 keys a call, unprocessed keys retried with back-off."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), DYNAMODB_BATCH_GET_MAX_KEYS):
        chunk = keys[start : start + DYNAMODB_BATCH_GET_MAX_KEYS]
        pending: dict[str, Any] = {table: {"Keys": [dump(key) for key in chunk], "ConsistentRead": True}}
        for attempt in range(8):
            answer = db.batch_get_item(RequestItems=pending)
            items.extend(load(item) for item in answer.get("Responses", {}).get(table, ()))
            pending = answer.get("UnprocessedKeys") or {}
            if not pending:
                break
            sleep(min(0.05 * 2**attempt, 1.0))
    return items


def batch_write(
    db: Any, table: str, requests: list[dict[str, Any]], sleep: Callable[[float], None] = time.sleep
) -> int:
    """Put and delete requests, 25 a call, unprocessed ones retried with back-off (8 tries); how many
    DynamoDB still left unprocessed."""
    left = 0
    for start in range(0, len(requests), DYNAMODB_BATCH_WRITE_MAX_ITEMS):
        pending: dict[str, Any] = {table: requests[start : start + DYNAMODB_BATCH_WRITE_MAX_ITEMS]}
        for attempt in range(8):
            pending = db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
            sleep(min(0.05 * 2**attempt, 1.0))
        left += len(pending.get(table, ()))
    return left
