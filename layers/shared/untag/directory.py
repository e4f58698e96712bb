"""The contact directory and the tag cache, in the activity table (contract section 4).

- ``DIRECTORY#<sha256 of the address>`` / ``CONTACT``: the contact id of one e-mail address. The
  directory holds digests, never the addresses themselves.
- ``DIRECTORY#sync`` / ``DIRECTORY``: how far the directory has caught up with Constant Contact
  (``SyncState``): the sync pass in progress (its next page) and the moment every change before
  which is in the directory.
- ``TAGS`` / ``HEAD`` and ``TAGS`` / ``PAGE#<n>``: the tag cache, name (trimmed, case-folded) ->
  tag ids, written page by page under a new generation, then its head.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from untag.constant_contact import Contact
from untag.dynamodb import batch_get, batch_write, condition_failed, dump, load
from untag.records import SyncState, TagCache

SYNC_KEY = {"pk": "DIRECTORY#sync", "sk": "DIRECTORY"}
TAGS_PER_ITEM = 1000  # 1,000 names of up to 255 characters: well under DynamoDB's 400 KB item


def email_key(email: str) -> dict[str, str]:
    return {"pk": f"DIRECTORY#{hashlib.sha256(email.encode()).hexdigest()}", "sk": "CONTACT"}


class DynamoDirectory:
    def __init__(
        self, client_factory: Callable[[], Any], table_name: str, *, sleep: Callable[[float], None] = time.sleep
    ):
        self._client_factory = client_factory
        self._table = table_name
        self._sleep = sleep

    @property
    def _db(self) -> Any:
        return self._client_factory()

    # -- the contact directory ---------------------------------------------------------------

    def lookup(self, emails: Iterable[str]) -> dict[str, str]:
        """The contact ids of the addresses the directory knows (normalised addresses in, same out)."""
        by_key = {email_key(email)["pk"]: email for email in dict.fromkeys(emails)}
        items = batch_get(self._db, self._table, [{"pk": pk, "sk": "CONTACT"} for pk in by_key], sleep=self._sleep)
        return {by_key[item["pk"]]: item["contact_id"] for item in items if item.get("contact_id")}

    def apply(self, contacts: Iterable[Contact]) -> None:
        """Store what Constant Contact says of these contacts: an address per live contact; a deleted
        contact's address leaves the directory (unless another live contact now has it)."""
        latest: dict[str, Contact] = {}
        for contact in contacts:  # a live contact wins over a deleted one with the same address
            if not (contact.deleted and contact.email in latest and not latest[contact.email].deleted):
                latest[contact.email] = contact
        puts = [
            {"PutRequest": {"Item": dump({**email_key(email), "contact_id": contact.contact_id})}}
            for email, contact in latest.items()
            if not contact.deleted
        ]
        self._batch_write(puts)
        for email, contact in latest.items():
            if contact.deleted:
                self._forget(email, contact.contact_id)

    def _forget(self, email: str, contact_id: str) -> None:
        try:  # only if the address still names the deleted contact (an update: the roles grant no delete)
            self._db.update_item(
                TableName=self._table,
                Key=dump(email_key(email)),
                UpdateExpression="REMOVE contact_id",
                ConditionExpression="contact_id = :contact",
                ExpressionAttributeValues=dump({":contact": contact_id}),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        if batch_write(self._db, self._table, requests, sleep=self._sleep):
            raise RuntimeError("DynamoDB left directory writes unprocessed after 8 tries")

    def sync_state(self) -> SyncState:
        answer = self._db.get_item(TableName=self._table, Key=dump(SYNC_KEY), ConsistentRead=True)
        item = load(answer["Item"]) if "Item" in answer else {}
        return SyncState(
            synced_until=_number(item.get("synced_until")),
            pass_started_at=_number(item.get("pass_started_at")),
            next_link=item.get("next_link") or None,
            contacts_synced=int(item.get("contacts_synced", 0)),
        )

    def save_sync_state(self, state: SyncState) -> None:
        item = {
            **SYNC_KEY,
            "synced_until": state.synced_until,
            "pass_started_at": state.pass_started_at,
            "next_link": state.next_link,
            "contacts_synced": state.contacts_synced,
        }
        self._db.put_item(
            TableName=self._table, Item=dump({key: value for key, value in item.items() if value is not None})
        )

    # -- the tag cache ------------------------------------------------------------------------

    def tag_cache(self) -> TagCache:
        answer = self._db.query(
            TableName=self._table,
            ConsistentRead=True,
            KeyConditionExpression="pk = :tags",
            ExpressionAttributeValues=dump({":tags": "TAGS"}),
        )
        items = [load(item) for item in answer.get("Items", ())]
        while "LastEvaluatedKey" in answer:
            answer = self._db.query(
                TableName=self._table,
                ConsistentRead=True,
                KeyConditionExpression="pk = :tags",
                ExpressionAttributeValues=dump({":tags": "TAGS"}),
                ExclusiveStartKey=answer["LastEvaluatedKey"],
            )
            items.extend(load(item) for item in answer.get("Items", ()))
        head = next((item for item in items if item["sk"] == "HEAD"), None)
        if head is None:
            return TagCache()
        names: dict[str, tuple[str, ...]] = {}
        for item in items:
            if item["sk"].startswith("PAGE#") and item.get("generation") == head["generation"]:
                names.update({key: tuple(ids) for key, ids in (item.get("names") or {}).items()})
        return TagCache(float(head["refreshed_at"]), names)

    def save_tag_cache(self, cache: TagCache) -> None:
        generation = uuid.uuid4().hex
        entries = sorted(cache.names.items())
        pages = [entries[start : start + TAGS_PER_ITEM] for start in range(0, len(entries), TAGS_PER_ITEM)]
        for number, page in enumerate(pages):
            self._db.put_item(
                TableName=self._table,
                Item=dump({"pk": "TAGS", "sk": f"PAGE#{number:05d}", "generation": generation, "names": dict(page)}),
            )
        self._db.put_item(
            TableName=self._table,
            Item=dump(
                {
                    "pk": "TAGS",
                    "sk": "HEAD",
                    "generation": generation,
                    "refreshed_at": cache.refreshed_at,
                    "pages": len(pages),
                }
            ),
        )


def _number(value: Any) -> float | None:
    return float(value) if value is not None else None
