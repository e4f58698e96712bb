"""The activity table (DynamoDB): requests, their activities, and the service's shared controls.

Items (one table, ``pk``/``sk``):
- ``REQUEST#<request_id>`` / ``REQUEST``: the request as accepted, with its plan (the canonical
  ids) while its activities are being created, the activity created for each planned chunk
  (``activities``: index -> activity id), ``status`` creating -> pending -> finished, and once
  finished the result event to publish.
- ``REQUEST#<request_id>`` / ``REJECTED#<key>``: a rejected message and its event.
- ``ACTIVITY#<activity_id>`` / ``ACTIVITY``: what Constant Contact last said of an activity and
  the requests it carries.
- ``CONTROL#...``: the daily-quota block, the token-refresh lock, the rate limiter's slots.

The sparse index ``due-index`` (``due``, ``due_at``) holds the work lists: partition ``CREATE``
the requests whose activities are still to be created, ``ACTIVITY`` the activities to poll or
settle, ``PUBLISH`` the events still to publish.
Every state transition is a conditional write.
"""

from __future__ import annotations

import json
import math
import time
from decimal import Decimal
from typing import Any, Callable, Iterable

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from untag.activity import ActivityStatus
from untag.observability import logger
from untag.request import UntagRequest

DUE_INDEX = "due-index"
DUE_ACTIVITY = "ACTIVITY"
DUE_PUBLISH = "PUBLISH"
DUE_CREATE = "CREATE"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def request_key(request_id: str) -> dict[str, str]:
    return {"pk": f"REQUEST#{request_id}", "sk": "REQUEST"}


def activity_key(activity_id: str) -> dict[str, str]:
    return {"pk": f"ACTIVITY#{activity_id}", "sk": "ACTIVITY"}


def _dump(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(_dynamo_value(value)) for key, value in item.items()}


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, (list, tuple)):
        return [_dynamo_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _dynamo_value(item) for key, item in value.items()}
    return value


def _load(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _moment(epoch: float) -> float:
    """A point in time on the work list: epoch seconds to the millisecond (whole seconds would hold work back)."""
    return round(epoch, 3)


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ActivityStore:
    def __init__(self, client_factory: Callable[[], Any], table_name: str, *, retention_days: int = 30,
                 clock: Callable[[], float] = time.time):
        self._client_factory = client_factory
        self._table = table_name
        self._retention_seconds = retention_days * 86400
        self._clock = clock

    @property
    def _db(self) -> Any:
        return self._client_factory()

    def _expires_at(self) -> int:
        return int(self._clock() + self._retention_seconds)

    # -- requests -------------------------------------------------------------------------

    def accept_request(self, request: UntagRequest, *, received_at: str, planned: int,
                       lease_seconds: float | None) -> tuple[bool, dict[str, Any]]:
        """Record an accepted request with its plan, on the creation work list: (True, the record) if
        recorded now, else (False, the record that already holds this request id).

        With ``lease_seconds`` this invocation holds the request for that long (it means to create its
        activities now); without, the request is due at once for whichever invocation drives creation.
        """
        now = self._clock()
        lease_until = now + lease_seconds if lease_seconds else 0
        item = {
            **request_key(request.request_id),
            "request_id": request.request_id,
            "status": "creating",
            "fingerprint": request.fingerprint,
            "tag_ids": list(request.tag_ids),
            "source_type": request.source_type,
            "source_ids": list(request.source_ids),
            "exclude_contact_ids": list(request.exclude_contact_ids),
            "metadata": json.dumps(request.metadata) if request.metadata is not None else None,
            "received_at": received_at,
            "planned": planned,
            "activities": {},
            "creation_errors": {},
            "lease_until": _moment(lease_until),
            "due": DUE_CREATE,
            "due_at": _moment(max(now, lease_until)),
        }
        item = {key: value for key, value in item.items() if value is not None}
        try:
            self._db.put_item(
                TableName=self._table,
                Item=_dump(item),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return True, item
        except ClientError as error:
            if not _condition_failed(error):
                raise
            existing = error.response.get("Item")
            return False, _load(existing) if existing else (self.get_request(request.request_id) or {})

    def due_creations(self, *, until: float, limit: int) -> list[dict[str, Any]]:
        """Requests whose activities are still to be created and that nobody holds, the longest waiting first."""
        return self._due(DUE_CREATE, until=until, limit=limit)

    def hold_creation(self, request_id: str, *, lease_seconds: float) -> dict[str, Any] | None:
        """Take a request to create its activities (until the lease ends); its whole record, or None if
        another invocation holds it or it is no longer being created."""
        now = self._clock()
        lease_until = _moment(now + lease_seconds)
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=_dump(request_key(request_id)),
                UpdateExpression="SET lease_until = :lease, due_at = :lease",
                ConditionExpression="#status = :creating AND lease_until < :now",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_dump({":lease": lease_until, ":creating": "creating", ":now": _moment(now)}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _condition_failed(error):
                return None
            raise
        return _load(answer["Attributes"])

    def let_go(self, request_id: str, *, due_at: float) -> None:
        """This invocation stops creating the request for now: it is due again at ``due_at`` for anyone."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_dump(request_key(request_id)),
                UpdateExpression="SET lease_until = :zero, due_at = :due_at",
                ConditionExpression="#status = :creating",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_dump({":zero": 0, ":creating": "creating", ":due_at": _moment(due_at)}),
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        answer = self._db.get_item(TableName=self._table, Key=_dump(request_key(request_id)), ConsistentRead=True)
        return _load(answer["Item"]) if "Item" in answer else None

    def get_requests(self, request_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        items = self._batch_get([request_key(request_id) for request_id in dict.fromkeys(request_ids)])
        return {item["request_id"]: item for item in items}

    def record_activity(self, activity: ActivityStatus, carried: list[tuple[str, int, bool]], *, first_poll_at: float,
                        deadline_at: float) -> None:
        """Store a just-created activity and link it to each (request_id, chunk index, is-last-chunk)."""
        self._db.put_item(
            TableName=self._table,
            Item=_dump({
                **activity_key(activity.activity_id),
                **{key: value for key, value in activity.as_event().items() if value is not None},
                "request_ids": sorted({request_id for request_id, _, _ in carried}),
                "deadline_at": _moment(deadline_at),
                "due": DUE_ACTIVITY,
                "due_at": _moment(first_poll_at),
            }),
        )
        for request_id, index, last in carried:
            self._record_chunk(request_id, index, "activities", activity.activity_id, last)

    def record_creation_error(self, request_id: str, index: int, message: str, *, last: bool) -> None:
        self._record_chunk(request_id, index, "creation_errors", message, last)

    def _record_chunk(self, request_id: str, index: int, attribute: str, value: str, last: bool) -> None:
        update = f"SET {attribute}.#index = :value"
        values = {":value": value, ":creating": "creating"}
        names = {"#index": str(index), "#status": "status"}
        if last:  # every chunk is done: the plan is no longer needed, and the request leaves the creation list
            update += ", #status = :pending REMOVE #due, due_at, lease_until, source_ids, exclude_contact_ids"
            values[":pending"] = "pending"
            names["#due"] = "due"
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_dump(request_key(request_id)),
                UpdateExpression=update,
                ConditionExpression="#status = :creating",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_dump(values),
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise
            # Another invocation took the request over after this one's lease ran out, and finished it.
            logger.warning("request no longer being created here; chunk not recorded",
                           extra={"request_id": request_id, "chunk": index})

    def finish_request(self, request_id: str, event: dict[str, Any]) -> dict[str, Any] | None:
        """pending -> finished, storing the result event to publish; the finished item, or None if
        another run finished it first."""
        now = self._clock()
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=_dump(request_key(request_id)),
                UpdateExpression="SET #status = :finished, finished_at = :finished_at, event = :event, "
                "#due = :publish, due_at = :now, expires_at = :expires REMOVE lease_until",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status", "#due": "due"},
                ExpressionAttributeValues=_dump({
                    ":finished": "finished", ":pending": "pending", ":finished_at": event["finished_at"],
                    ":event": json.dumps(event), ":publish": DUE_PUBLISH, ":now": _moment(now),
                    ":expires": self._expires_at(),
                }),
                ReturnValues="ALL_NEW",
            )
            return _load(answer["Attributes"])
        except ClientError as error:
            if _condition_failed(error):
                return None
            raise

    def put_rejection(self, request_id: str, key: str, event: dict[str, Any]) -> dict[str, Any] | None:
        """Store a rejection; the item to publish, or None if an earlier delivery already published it."""
        item = {
            "pk": f"REQUEST#{request_id}", "sk": f"REJECTED#{key}", "request_id": request_id, "status": "rejected",
            "event": json.dumps(event), "due": DUE_PUBLISH, "due_at": _moment(self._clock()), "expires_at": self._expires_at(),
        }
        try:
            self._db.put_item(TableName=self._table, Item=_dump(item), ConditionExpression="attribute_not_exists(pk)",
                              ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return item
        except ClientError as error:
            if not _condition_failed(error):
                raise
            stored = _load(error.response["Item"]) if error.response.get("Item") else item
            return stored if "due" in stored else None

    # -- the poller's work list -------------------------------------------------------------

    def due_activities(self, *, limit: int = 5000) -> list[dict[str, Any]]:
        """The poller's work list: activities to poll or settle, the soonest due first."""
        return self._due(DUE_ACTIVITY, limit=limit)

    def due_publications(self, *, until: float | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        """Result events stored but not yet accepted by SNS (due by ``until``)."""
        return self._due(DUE_PUBLISH, until=until, limit=limit)

    def _due(self, partition: str, *, until: float | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        """Items of one partition of the due index, soonest first (optionally only those due by ``until``)."""
        condition = "#due = :partition"
        values: dict[str, Any] = {":partition": partition}
        if until is not None:
            condition += " AND due_at <= :until"
            values[":until"] = _moment(until)
        arguments = {
            "TableName": self._table, "IndexName": DUE_INDEX, "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#due": "due"}, "ExpressionAttributeValues": _dump(values),
            "ScanIndexForward": True,
        }
        items: list[dict[str, Any]] = []
        while len(items) < limit:
            answer = self._db.query(**arguments, Limit=min(1000, limit - len(items)))
            items.extend(_load(item) for item in answer.get("Items", ()))
            if "LastEvaluatedKey" not in answer:
                break
            arguments["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return items

    def get_activities(self, activity_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        items = self._batch_get([activity_key(activity_id) for activity_id in dict.fromkeys(activity_ids)])
        return {item["activity_id"]: item for item in items}

    def update_activity(self, activity: ActivityStatus, *, previous_state: str, next_poll_at: float | None) -> bool:
        """Store a newer status (conditional on the state we read); ``next_poll_at`` None once it is final."""
        fields = {key: value for key, value in activity.as_event().items() if key != "activity_id"}
        names = {f"#{key}": key for key in fields}
        values = {f":{key}": value for key, value in fields.items()}
        assignments = [f"#{key} = :{key}" for key in fields]
        if next_poll_at is not None:
            assignments.append("due_at = :due_at")
            values[":due_at"] = _moment(next_poll_at)
        values[":previous"] = previous_state
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_dump(activity_key(activity.activity_id)),
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression="#state = :previous",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_dump(values),
            )
            return True
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise

    def postpone_activity(self, activity_id: str, next_poll_at: float) -> None:
        self._db.update_item(
            TableName=self._table, Key=_dump(activity_key(activity_id)),
            UpdateExpression="SET due_at = :due_at", ConditionExpression="attribute_exists(#due)",
            ExpressionAttributeNames={"#due": "due"}, ExpressionAttributeValues=_dump({":due_at": _moment(next_poll_at)}),
        )

    def settle_activity(self, activity_id: str) -> None:
        """The activity is final and every request it carries has taken note: leave the work list."""
        self._leave_work_list(activity_key(activity_id))

    def mark_published(self, items: list[dict[str, Any]]) -> None:
        """Take published items off the work list: whole-item puts, 25 a call (nothing else writes them now)."""
        puts = [{"PutRequest": {"Item": _dump({key: value for key, value in item.items() if key not in ("due", "due_at")})}}
                for item in items]
        for start in range(0, len(puts), 25):
            pending: dict[str, Any] = {self._table: puts[start : start + 25]}
            for attempt in range(8):
                pending = self._db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))

    def _leave_work_list(self, key: dict[str, str]) -> None:
        try:
            self._db.update_item(
                TableName=self._table, Key=_dump(key),
                UpdateExpression="REMOVE #due, due_at SET expires_at = :expires",
                ConditionExpression="attribute_exists(#due)",
                ExpressionAttributeNames={"#due": "due"},
                ExpressionAttributeValues=_dump({":expires": self._expires_at()}),
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise

    # -- shared controls --------------------------------------------------------------------

    def quota_blocked_until(self) -> float:
        answer = self._db.get_item(TableName=self._table, Key=_dump({"pk": "CONTROL#quota", "sk": "CONTROL"}))
        return float(_load(answer["Item"]).get("blocked_until", 0)) if "Item" in answer else 0.0

    def block_quota_until(self, until: float) -> None:
        self._db.put_item(TableName=self._table, Item=_dump({
            "pk": "CONTROL#quota", "sk": "CONTROL", "blocked_until": int(until), "expires_at": int(until + 86400),
        }))

    def acquire(self, name: str, holder: str, lease_seconds: float) -> float | None:
        """A lease-based lock; returns when it was last released (epoch seconds) or None if another holds it."""
        now = self._clock()
        try:
            answer = self._db.update_item(
                TableName=self._table, Key=_dump({"pk": f"CONTROL#lock#{name}", "sk": "CONTROL"}),
                UpdateExpression="SET holder = :holder, lease_until = :lease",
                ConditionExpression="attribute_not_exists(holder) OR lease_until < :now",
                ExpressionAttributeValues=_dump({":holder": holder, ":lease": now + lease_seconds, ":now": now}),
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if _condition_failed(error):
                return None
            raise
        return float(_load(answer.get("Attributes", {})).get("released_at", 0))

    def release(self, name: str, holder: str) -> None:
        try:
            self._db.update_item(
                TableName=self._table, Key=_dump({"pk": f"CONTROL#lock#{name}", "sk": "CONTROL"}),
                UpdateExpression="REMOVE holder, lease_until SET released_at = :now",
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues=_dump({":holder": holder, ":now": self._clock()}),
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise

    def reserve_slot(self, slot: int) -> bool:
        """Take one rate-limiter slot (shared by every instance); False if another took it."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=_dump({"pk": f"CONTROL#rate#{slot}", "sk": "CONTROL", "expires_at": int(self._clock() + 3600)}),
                ConditionExpression="attribute_not_exists(pk)",
            )
            return True
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise

    # -- helpers ----------------------------------------------------------------------------

    def _batch_get(self, keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {self._table: {"Keys": [_dump(key) for key in keys[start : start + 100]],
                                                     "ConsistentRead": True}}
            for attempt in range(8):
                answer = self._db.batch_get_item(RequestItems=pending)
                items.extend(_load(item) for item in answer.get("Responses", {}).get(self._table, ()))
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
        return items


class SharedRateLimiter:
    """At most ``per_second`` Constant Contact calls per second across every instance of both functions.

    Time is cut into slots of ``1 / per_second`` seconds; a call takes the next free slot with a
    conditional put (one DynamoDB write per call) and waits for the slot's start, so calls
    are at least one slot apart whichever instance makes them. A slot that began while it was
    being taken is left unused (a call made late in its slot would be less than a slot before
    the next one, and 5 calls could fall in one second), and slots are taken at least as far
    ahead as the last put took, so that a slow put does not miss slot after slot.
    """

    LATE_SLOTS_SKIPPED = 5  # then a late slot is used after all: never spin while DynamoDB is slow

    def __init__(self, store: ActivityStore, per_second: float, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self._store = store
        self._slot_seconds = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0
        self._lead = 0.0  # how long the last put took

    def acquire(self) -> None:
        slot = max(self._next_slot, self._first_slot_after(self._clock() + self._lead))
        late = 0
        while True:
            asked = self._clock()
            taken = self._store.reserve_slot(slot)
            now = self._clock()
            self._lead = max(0.0, now - asked)
            if taken and (slot * self._slot_seconds >= now or late >= self.LATE_SLOTS_SKIPPED):
                break
            late += taken  # taken by another instance, or begun: the next that will not have begun
            slot = max(slot + 1, self._first_slot_after(now + self._lead))
        self._next_slot = slot + 1
        wait = slot * self._slot_seconds - self._clock()
        if wait > 0:
            self._sleep(wait)

    def _first_slot_after(self, moment: float) -> int:
        return math.ceil(moment / self._slot_seconds)
