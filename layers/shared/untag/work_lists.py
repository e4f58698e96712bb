"""The activity table's work lists of activities (the poller's) and of result events to publish, and the
table plumbing the store shares (``untag.store.ActivityStore`` extends this class)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from untag.activity import ActivityStatus
from untag.dynamodb import batch_get, batch_write, condition_failed, dump, load, moment
from untag.records import ActivityRecord, Publication
from untag.table_items import DUE_ACTIVITY, DUE_INDEX, DUE_PUBLISH, activity_key, activity_record, publication


class WorkLists:
    def __init__(
        self,
        client_factory: Callable[[], Any],
        table_name: str,
        *,
        retention_days: int = 30,
        clock: Callable[[], float] = time.time,
    ):
        self._client_factory = client_factory
        self._table = table_name
        self._retention_seconds = retention_days * 86400
        self._clock = clock

    @property
    def _db(self) -> Any:
        return self._client_factory()

    def _transition(
        self,
        key: dict[str, str],
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        returns: str = "NONE",
    ) -> dict[str, Any] | None:
        """One conditional UpdateItem: the item's attributes as ``returns`` asks ({} for none), or None when
        the condition failed (another invocation moved the item first)."""
        arguments: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=dump(key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=dump(values),
                ReturnValues=returns,
                **arguments,
            )
        except ClientError as error:
            if condition_failed(error):
                return None
            raise
        return load(answer.get("Attributes", {}))

    def _expires_at(self) -> int:
        return int(self._clock() + self._retention_seconds)

    # -- the poller's work list -------------------------------------------------------------

    def due_activities(self, *, limit: int = 5000) -> list[ActivityRecord]:
        """The poller's work list: activities to poll or settle, the soonest due first."""
        return [activity_record(item) for item in self._due(DUE_ACTIVITY, limit=limit)]

    def due_publications(self, *, until: float | None = None, limit: int = 5000) -> list[Publication]:
        """Result events stored but not yet accepted by SNS (due by ``until``)."""
        return [publication(item) for item in self._due(DUE_PUBLISH, until=until, limit=limit)]

    def _due(self, partition: str, *, until: float | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        """Items of one partition of the due index, soonest first (optionally only those due by ``until``)."""
        condition = "#due = :partition"
        values: dict[str, Any] = {":partition": partition}
        if until is not None:
            condition += " AND due_at <= :until"
            values[":until"] = moment(until)
        arguments = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#due": "due"},
            "ExpressionAttributeValues": dump(values),
            "ScanIndexForward": True,
        }
        items: list[dict[str, Any]] = []
        while len(items) < limit:
            answer = self._db.query(**arguments, Limit=min(1000, limit - len(items)))
            items.extend(load(item) for item in answer.get("Items", ()))
            if "LastEvaluatedKey" not in answer:
                break
            arguments["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return items

    def get_activities(self, activity_ids: Iterable[str]) -> dict[str, ActivityRecord]:
        keys = [activity_key(activity_id) for activity_id in dict.fromkeys(activity_ids)]
        return {item["activity_id"]: activity_record(item) for item in batch_get(self._db, self._table, keys)}

    def update_activity(self, activity: ActivityStatus, *, previous_state: str, next_poll_at: float | None) -> bool:
        """Store a newer status (conditional on the state we read); ``next_poll_at`` None once it is final."""
        fields = {key: value for key, value in activity.as_event().items() if key != "activity_id"}
        names = {f"#{key}": key for key in fields}
        values = {f":{key}": value for key, value in fields.items()}
        assignments = [f"#{key} = :{key}" for key in fields]
        if next_poll_at is not None:
            assignments.append("due_at = :due_at")
            values[":due_at"] = moment(next_poll_at)
        values[":previous"] = previous_state
        update = "SET " + ", ".join(assignments) + " REMOVE missing_since"  # seen: not missing
        key = activity_key(activity.activity_id)
        return self._transition(key, update, "#state = :previous", values, names) is not None

    def note_missing(self, activity_id: str, now: float, *, next_poll_at: float) -> float:
        """Constant Contact answered 404 for an activity: when it was first found missing (kept until seen)."""
        answer = self._db.update_item(
            TableName=self._table,
            Key=dump(activity_key(activity_id)),
            UpdateExpression="SET missing_since = if_not_exists(missing_since, :now), due_at = :due_at",
            ExpressionAttributeValues=dump({":now": moment(now), ":due_at": moment(next_poll_at)}),
            ReturnValues="ALL_NEW",  # (UPDATED_NEW may leave out an attribute if_not_exists kept)
        )
        return float(load(answer["Attributes"])["missing_since"])

    def postpone_activity(self, activity_id: str, next_poll_at: float) -> None:
        self._db.update_item(
            TableName=self._table,
            Key=dump(activity_key(activity_id)),
            UpdateExpression="SET due_at = :due_at",
            ConditionExpression="attribute_exists(#due)",
            ExpressionAttributeNames={"#due": "due"},
            ExpressionAttributeValues=dump({":due_at": moment(next_poll_at)}),
        )

    def settle_activity(self, activity_id: str) -> None:
        """The activity is final and every request it carries has taken note: leave the work list."""
        self._leave_work_list(activity_key(activity_id))

    def mark_published(self, publications: list[Publication]) -> None:
        """Take published events off the work list: whole-item puts, 25 a call (nothing else writes them now)."""
        puts = [
            {
                "PutRequest": {
                    "Item": dump(
                        {key: value for key, value in publication.stored.items() if key not in ("due", "due_at")}
                    )
                }
            }
            for publication in publications
        ]
        batch_write(self._db, self._table, puts)  # (one left unprocessed stays due: published again, same event_id)

    def _leave_work_list(self, key: dict[str, str]) -> None:
        self._transition(
            key,
            "REMOVE #due, due_at SET expires_at = :expires",
            "attribute_exists(#due)",
            {":expires": self._expires_at()},
            {"#due": "due"},
        )
