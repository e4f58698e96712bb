"""The activity table (DynamoDB): requests, their activities, and the result events due.

Items (one table, ``pk``/``sk``):
- ``REQUEST#<request_id>`` / ``REQUEST``: the request as accepted, with its plan (the canonical
  ids) while its activities are being created, the activity created for each planned chunk
  (``activities``: index -> activity id), ``status`` (resolving ->) creating -> pending -> finished,
  and once finished the result event to publish. A request with tag names, e-mail addresses or
  ``dry_run`` starts ``resolving``, on the ``RESOLVE`` work list (``untag.resolution``).
- ``REQUEST#<request_id>`` / ``REJECTED#<key>``: a rejected message and its event.
- ``ACTIVITY#<activity_id>`` / ``ACTIVITY``: what Constant Contact last said of an activity and
  the requests it carries.
- ``REQUEST#<request_id>`` / ``AMBIGUOUS#<chunk>#<n>``: a create that got no clear answer.
- ``CONTROL#...``: the shared controls (``untag.controls``).

The sparse index ``due-index`` (``due``, ``due_at``) holds the work lists: partition ``RESOLVE``
the requests whose names are still to be resolved, ``CREATE`` those whose activities are still to
be created, ``ACTIVITY`` the activities to poll or settle, ``PUBLISH`` the events still to publish.
- ``DIRECTORY#...`` / ``TAGS``: the contact directory and the tag cache (``untag.directory``).
Every state transition is a conditional write. The store owns every conversion: callers get
records (``untag.records``), never items, Decimals or JSON strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from untag.activity import ActivityStatus
from untag.dynamodb import batch_get, dump, load, moment
from untag.dynamodb import condition_failed as _condition_failed
from untag.observability import logger
from untag.records import AmbiguousCreate, Publication, RequestRecord, Resolution
from untag.request import UntagRequest
from untag.table_items import (  # the table's keys and its item <-> record conversions
    DUE_ACTIVITY,
    DUE_AMBIGUOUS,
    DUE_CREATE,
    DUE_PUBLISH,
    DUE_RESOLVE,
    activity_key,
    publication,
    rejection_key,
    request_key,
    request_record,
)
from untag.work_lists import WorkLists


class ActivityStore(WorkLists):
    """Requests, rejections and ambiguous creates; the work lists of activities and publications (its base)."""

    # -- requests -------------------------------------------------------------------------

    def accept_request(
        self,
        request: UntagRequest,
        *,
        received_at: str,
        planned: int,
        lease_seconds: float | None,
        received_epoch: float = 0.0,
    ) -> tuple[bool, RequestRecord]:
        """Record an accepted request with its plan, on the creation work list: (True, the record) if
        recorded now, else (False, the record that already holds this request id).

        With ``lease_seconds`` this invocation holds the request for that long (it means to create its
        activities now); without, the request is due at once for whichever invocation drives creation.
        """
        now = self._clock()
        lease_until = now + lease_seconds if lease_seconds else 0
        resolving = request.needs_resolution
        item = {
            **request_key(request.request_id),
            "request_id": request.request_id,
            "status": "resolving" if resolving else "creating",
            "fingerprint": request.fingerprint,
            "tag_ids": list(request.tag_ids),
            "source_type": request.source_type,
            "source_ids": list(request.source_ids),
            "exclude_contact_ids": list(request.exclude_contact_ids),
            "metadata": json.dumps(request.metadata) if request.metadata is not None else None,
            "received_at": received_at,
            "received_epoch": moment(received_epoch) if received_epoch else None,
            "planned": planned,
            "activities": {},
            "creation_errors": {},
            "ambiguous_creates": {},
            "tag_names": list(request.tag_names) or None,
            "exclude_emails": list(request.exclude_emails) or None,
            "dry_run": True if request.dry_run else None,
            "lease_until": moment(lease_until),
            "due": DUE_RESOLVE if resolving else DUE_CREATE,
            "due_at": moment(max(now, lease_until)),
        }
        item = {key: value for key, value in item.items() if value is not None}
        try:
            self._db.put_item(
                TableName=self._table,
                Item=dump(item),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return True, request_record(item)
        except ClientError as error:
            if not _condition_failed(error):
                raise
            existing = error.response.get("Item")
            if existing:
                return False, request_record(load(existing))
            record = self.get_request(request.request_id)
            if record is None:  # (deleted in between: cannot happen with this table's writes)
                raise
            return False, record

    def due_creations(self, *, until: float | None, limit: int) -> list[RequestRecord]:
        """Requests whose activities are still to be created and that nobody holds, the longest waiting first."""
        return [request_record(item) for item in self._due(DUE_CREATE, until=until, limit=limit)]

    def due_resolutions(self, *, until: float | None, limit: int) -> list[RequestRecord]:
        """Requests whose names are still to be resolved and that nobody holds, the longest waiting first."""
        return [request_record(item) for item in self._due(DUE_RESOLVE, until=until, limit=limit)]

    def hold_resolution(self, request_id: str, *, lease_seconds: float) -> RequestRecord | None:
        """Take a request to resolve its names (until the lease ends), or None if another holds it."""
        return self.hold_creation(request_id, lease_seconds=lease_seconds, status="resolving")

    def resolve_request(
        self,
        request_id: str,
        *,
        tag_ids: tuple[str, ...],
        source_ids: tuple[str, ...],
        exclude_contact_ids: tuple[str, ...],
        planned: int,
        resolution: Resolution,
    ) -> bool:
        """resolving -> creating: the names resolved to ids, the request goes on the creation work list."""
        values = {
            ":creating": "creating",
            ":resolving": "resolving",
            ":tags": list(tag_ids),
            ":sources": list(source_ids),
            ":excluded": list(exclude_contact_ids),
            ":planned": planned,
            ":resolution": json.dumps(resolution.as_item()),
            ":create": DUE_CREATE,
            ":now": moment(self._clock()),
            ":zero": 0,
        }
        update = (
            "SET #status = :creating, tag_ids = :tags, source_ids = :sources, exclude_contact_ids = :excluded, "
            "planned = :planned, resolution = :resolution, #due = :create, due_at = :now, lease_until = :zero "
            "REMOVE exclude_emails, tag_names"  # (the names that did not resolve are in the resolution)
        )
        names = {"#status": "status", "#due": "due"}
        return self._transition(request_key(request_id), update, "#status = :resolving", values, names) is not None

    def hold_creation(self, request_id: str, *, lease_seconds: float, status: str = "creating") -> RequestRecord | None:
        """Take a request to create its activities (until the lease ends); its whole record, or None if
        another invocation holds it or it is no longer being created."""
        now = self._clock()
        lease_until = moment(now + lease_seconds)
        item = self._transition(
            request_key(request_id),
            "SET lease_until = :lease, due_at = :lease",
            "#status = :status AND lease_until < :now",
            {":lease": lease_until, ":status": status, ":now": moment(now)},
            {"#status": "status"},
            returns="ALL_NEW",
        )
        return None if item is None else request_record(item)

    def let_go(self, request_id: str, *, due_at: float) -> None:
        """This invocation stops creating (or resolving) the request for now: due again at ``due_at`` for anyone."""
        self._transition(
            request_key(request_id),
            "SET lease_until = :zero, due_at = :due_at",
            "#status IN (:creating, :resolving)",
            {":zero": 0, ":creating": "creating", ":resolving": "resolving", ":due_at": moment(due_at)},
            {"#status": "status"},
        )

    def get_request(self, request_id: str) -> RequestRecord | None:
        answer = self._db.get_item(TableName=self._table, Key=dump(request_key(request_id)), ConsistentRead=True)
        return request_record(load(answer["Item"])) if "Item" in answer else None

    def get_requests(self, request_ids: Iterable[str]) -> dict[str, RequestRecord]:
        keys = [request_key(request_id) for request_id in dict.fromkeys(request_ids)]
        return {item["request_id"]: request_record(item) for item in batch_get(self._db, self._table, keys)}

    def record_activity(
        self,
        activity: ActivityStatus,
        carried: list[tuple[str, int, bool]],
        *,
        first_poll_at: float,
        deadline_at: float,
    ) -> None:
        """Store a just-created activity and link it to each (request_id, chunk index, is-last-chunk)."""
        self._db.put_item(
            TableName=self._table,
            Item=dump(
                {
                    **activity_key(activity.activity_id),
                    **{key: value for key, value in activity.as_event().items() if value is not None},
                    "request_ids": sorted({request_id for request_id, _, _ in carried}),
                    "deadline_at": moment(deadline_at),
                    "due": DUE_ACTIVITY,
                    "due_at": moment(first_poll_at),
                }
            ),
        )
        for request_id, index, last in carried:
            self._record_chunk(request_id, index, "activities", activity.activity_id, last)

    def note_ambiguous_create(self, request_id: str, index: int, error: str) -> int:
        """A create of this chunk got no clear answer (it may exist, unfollowed): how many times that happened.

        Also listed for operators (``untag ambiguous``) on the ``AMBIGUOUS`` work list."""
        now = self._clock()
        answer = self._db.update_item(
            TableName=self._table,
            Key=dump(request_key(request_id)),
            UpdateExpression="SET ambiguous_creates.#index = if_not_exists(ambiguous_creates.#index, :zero) + :one",
            ConditionExpression="#status = :creating",
            ExpressionAttributeNames={"#index": str(index), "#status": "status"},
            ExpressionAttributeValues=dump({":zero": 0, ":one": 1, ":creating": "creating"}),
            ReturnValues="ALL_NEW",
        )
        times = int(load(answer["Attributes"])["ambiguous_creates"][str(index)])
        self._db.put_item(
            TableName=self._table,
            Item=dump(
                {
                    "pk": f"REQUEST#{request_id}",
                    "sk": f"AMBIGUOUS#{index}#{times}",
                    "request_id": request_id,
                    "chunk": index,
                    "error": error[:300],
                    "at": moment(now),
                    "due": DUE_AMBIGUOUS,
                    "due_at": moment(now),
                    "expires_at": self._expires_at(),
                }
            ),
        )
        return times

    def ambiguous_creates(self, *, limit: int = 1000) -> list[AmbiguousCreate]:
        """Creates that got no clear answer, oldest first (each may have left an activity nobody follows)."""
        return [
            AmbiguousCreate(item["request_id"], int(item["chunk"]), float(item["at"]), item.get("error", ""))
            for item in self._due(DUE_AMBIGUOUS, limit=limit)
        ]

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
        if self._transition(request_key(request_id), update, "#status = :creating", values, names) is None:
            # Another invocation took the request over after this one's lease ran out, and finished it.
            logger.warning(
                "request no longer being created here; chunk not recorded",
                extra={"request_id": request_id, "chunk": index},
            )

    def finish_request(self, request_id: str, event: dict[str, Any]) -> Publication | None:
        """pending (or resolving: nothing to create, or a preview) -> finished, storing the result event to
        publish; its publication, or None if another run finished it first."""
        values = {
            ":finished": "finished",
            ":pending": "pending",
            ":resolving": "resolving",
            ":finished_at": event["finished_at"],
            ":event": json.dumps(event),
            ":publish": DUE_PUBLISH,
            ":now": moment(self._clock()),
            ":expires": self._expires_at(),
        }
        update = (
            "SET #status = :finished, finished_at = :finished_at, event = :event, #due = :publish, due_at = :now, "
            "expires_at = :expires REMOVE lease_until, creation_errors, source_ids, exclude_contact_ids, exclude_emails"
        )  # (the creation errors are in the event now: the record with its event stays one item)
        names = {"#status": "status", "#due": "due"}
        item = self._transition(
            request_key(request_id), update, "#status IN (:pending, :resolving)", values, names, returns="ALL_NEW"
        )
        return None if item is None else publication(item)

    def put_rejection(self, request_id: str, key: str, event: dict[str, Any]) -> Publication | None:
        """Store a rejection; its publication, or None if an earlier delivery already published it."""
        item = {
            **rejection_key(request_id, key),
            "request_id": request_id,
            "status": "rejected",
            "event": json.dumps(event),
            "due": DUE_PUBLISH,
            "due_at": moment(self._clock()),
            "expires_at": self._expires_at(),
        }
        try:
            self._db.put_item(
                TableName=self._table,
                Item=dump(item),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return publication(item)
        except ClientError as error:
            if not _condition_failed(error):
                raise
            stored = load(error.response["Item"]) if error.response.get("Item") else item
            return publication(stored) if "due" in stored else None

    def rejections(self, request_id: str) -> list[dict[str, Any]]:
        """The rejected events stored under a request id, oldest key first."""
        answer = self._db.query(
            TableName=self._table,
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :rejected)",
            ExpressionAttributeValues=dump({":pk": request_key(request_id)["pk"], ":rejected": "REJECTED#"}),
        )
        return [json.loads(load(item)["event"]) for item in answer.get("Items", ())]
