"""The service's shared controls, in the activity table: the daily-quota block, leases (the token
refresh lock) and the rate limiter's slots. One quota policy for both functions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from untag.budget import next_utc_midnight
from untag.dynamodb import condition_failed, dump, load

QUOTA_KEY = {"pk": "CONTROL#quota", "sk": "CONTROL"}


class Controls:
    def __init__(self, client_factory: Callable[[], Any], table_name: str, *, clock: Callable[[], float] = time.time):
        self._client_factory = client_factory
        self._table = table_name
        self._clock = clock

    @property
    def _db(self) -> Any:
        return self._client_factory()

    # -- the daily quota: one policy for the intake and the poller -------------------------

    def quota_spent(self) -> bool:
        """Whether Constant Contact's daily quota is known to be spent (no call may be made until it resets)."""
        return self.quota_blocked_until() > self._clock()

    def quota_blocked_until(self) -> float:
        answer = self._db.get_item(TableName=self._table, Key=dump(QUOTA_KEY))
        return float(load(answer["Item"]).get("blocked_until", 0)) if "Item" in answer else 0.0

    def quota_exceeded(self) -> float:
        """Constant Contact answered ``quota_exceeded``: block every call until 00:00 UTC; returns that moment."""
        until = next_utc_midnight(self._clock())
        self._db.put_item(
            TableName=self._table,
            Item=dump({**QUOTA_KEY, "blocked_until": int(until), "expires_at": int(until + 86400)}),
        )
        return until

    def take_calls(self, purpose: str, calls: int, share: int) -> int:
        """Take up to ``calls`` of today's Constant Contact calls for ``purpose`` (directory sync, lookups),
        whose share of the daily quota is ``share`` calls; how many were granted (0 when the share is spent).

        One conditional write per grant: a counter per purpose in an item per UTC day."""
        day = time.strftime("%Y-%m-%d", time.gmtime(self._clock()))
        key = dump({"pk": f"CONTROL#calls#{day}", "sk": "CONTROL"})
        wanted = min(calls, share)
        for _ in range(2):
            if wanted <= 0:
                return 0
            try:
                self._db.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="ADD #purpose :calls SET expires_at = :expires",
                    ConditionExpression="attribute_not_exists(#purpose) OR #purpose <= :room",
                    ExpressionAttributeNames={"#purpose": purpose},
                    ExpressionAttributeValues=dump(
                        {":calls": wanted, ":room": share - wanted, ":expires": int(self._clock() + 2 * 86400)}
                    ),
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return wanted
            except ClientError as error:
                if not condition_failed(error):
                    raise
                spent = int(load(error.response.get("Item") or {}).get(purpose, share))
                wanted = min(wanted, share - spent)  # what is left of the share: one more try
        return 0

    def return_calls(self, purpose: str, calls: int) -> None:
        """Give back calls taken and not made."""
        if calls > 0:
            day = time.strftime("%Y-%m-%d", time.gmtime(self._clock()))
            self._db.update_item(
                TableName=self._table,
                Key=dump({"pk": f"CONTROL#calls#{day}", "sk": "CONTROL"}),
                UpdateExpression="ADD #purpose :calls",
                ExpressionAttributeNames={"#purpose": purpose},
                ExpressionAttributeValues=dump({":calls": -calls}),
            )

    # -- leases ------------------------------------------------------------------------------

    def acquire(self, name: str, holder: str, lease_seconds: float) -> float | None:
        """A lease-based lock; returns when it was last released (epoch seconds) or None if another holds it."""
        now = self._clock()
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=dump({"pk": f"CONTROL#lock#{name}", "sk": "CONTROL"}),
                UpdateExpression="SET holder = :holder, lease_until = :lease",
                ConditionExpression="attribute_not_exists(holder) OR lease_until < :now",
                ExpressionAttributeValues=dump({":holder": holder, ":lease": now + lease_seconds, ":now": now}),
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if condition_failed(error):
                return None
            raise
        return float(load(answer.get("Attributes", {})).get("released_at", 0))

    def release(self, name: str, holder: str) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=dump({"pk": f"CONTROL#lock#{name}", "sk": "CONTROL"}),
                UpdateExpression="REMOVE holder, lease_until SET released_at = :now",
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues=dump({":holder": holder, ":now": self._clock()}),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise

    # -- the rate limiter's slots (untag.rate) -----------------------------------------------

    def reserve_slot(self, slot: int) -> bool:
        """Take one rate-limiter slot (shared by every instance); False if another took it."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=dump({"pk": f"CONTROL#rate#{slot}", "sk": "CONTROL", "expires_at": int(self._clock() + 3600)}),
                ConditionExpression="attribute_not_exists(pk)",
            )
            return True
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
