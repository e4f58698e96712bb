"""The simulator's activity endpoints and lifecycle: create a tag removal, read one, list them (newest first);
and the test control that adds other activity types to the account's list.

Mixed into ``ConstantContactSimulator``, whose state it uses: ``_lock``, ``_records`` (every activity,
oldest first), ``_seq``, ``_outcomes``, ``_foreign_rng``, ``refused_contacts``, ``seconds_to_finish``,
``reads_to_finish``.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from devkit.simulator.contract import (
    ACTIVITIES,
    FILTERABLE_STATES,
    TAGGINGS_REMOVE,
    TERMINAL_STATES,
    Response,
    api_errors,
    decode_cursor,
    encode_cursor,
    iso,
    item_count,
    strict_json,
    validate_tagging_body,
)


class ActivityApi:
    """``POST contacts_taggings_remove``, ``GET activities/{id}``, ``GET activities``; a tagging activity
    moves on by elapsed time (``seconds_to_finish``) or else by reads (``reads_to_finish``)."""

    _lock: Any
    _records: dict[str, dict]
    _seq: int
    _outcomes: dict[str, str]
    _foreign_rng: Any
    _untag_completed: Any
    refused_contacts: set[str]
    seconds_to_finish: float | None
    reads_to_finish: int

    def _create(self, query: dict, headers: Any, raw: bytes) -> Response:
        problems = ["query parameters are not accepted"] if query else []
        content_type = headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            problems.append(f"Content-Type must be application/json, got {content_type!r}")
        else:
            try:
                body = strict_json(raw)
            except ValueError as error:
                problems.append(f"body is not valid JSON ({error})")
            else:
                problems += validate_tagging_body(body)
        if problems:
            return self._bad_request("POST", TAGGINGS_REMOVE, problems)
        refused = sorted(self.refused_contacts & set(body["source"].get("contact_ids") or ()))
        if refused:  # a well-formed body Constant Contact refuses (e.g. a contact that cannot be tagged)
            return 400, api_errors("contacts.api.validation.error", f"contact {refused[0]} cannot be updated")
        with self._lock:
            rec = self._new_record(str(uuid.uuid4()), "tagging", body, self._clock())
            rec["total"] = item_count(body)
            return 201, self._view(rec)

    def _get(self, activity_id: str, query: dict) -> Response:
        if query:
            return self._bad_request("GET", f"{ACTIVITIES}/{activity_id}", ["query parameters are not accepted"])
        with self._lock:
            rec = self._records.get(activity_id)
            if rec is None or rec["forgotten"]:
                return 404, api_errors("not_found", f"Activity {activity_id} not found")
            self._advance(rec, read=True)
            return 200, self._view(rec)

    def _list(self, query: dict) -> Response:
        problems = [f"unknown query parameter {k!r}" for k in query if k not in ("limit", "state", "next")]
        problems += [f"query parameter {k!r} repeated" for k, v in query.items() if len(v) > 1]
        limit_text = query.get("limit", ["50"])[0]
        limit = int(limit_text) if re.fullmatch(r"[0-9]{1,4}", limit_text) else 0
        if not 1 <= limit <= 500:
            problems.append(f"limit must be an integer 1..500, got {limit_text!r}")
        state = query.get("state", [None])[0]
        if state is not None and state not in FILTERABLE_STATES:
            problems.append(f"state must be one of {FILTERABLE_STATES}, got {state!r}")
        before = decode_cursor(query["next"][0]) if "next" in query else None
        if "next" in query and before is None:
            problems.append("next is not a cursor this server issued")
        if problems:
            return self._bad_request("GET", ACTIVITIES, problems)
        page: list[dict] = []
        more = False
        with self._lock:
            for rec in reversed(list(self._records.values())):  # newest first
                if rec["forgotten"] or (before is not None and rec["seq"] >= before):
                    continue
                seen = dict(rec)  # peek first (_advance only rebinds keys): a read counts if listed
                self._advance(seen, read=True)
                if state is not None and seen["state"] != state:
                    continue
                if len(page) == limit:
                    more = True
                    break
                rec.update(seen)
                self._untag_completed(rec)
                page.append(self._view(rec))
                last_seq = rec["seq"]
        body: dict = {"activities": page}
        if more:
            params = {"limit": limit, **({"state": state} if state else {}), "next": encode_cursor(last_seq)}
            body["_links"] = {"next": {"href": f"{ACTIVITIES}?{urlencode(params)}"}}
        return 200, body

    def add_foreign_activities(self, n: int) -> None:
        """Other activity types (exports, imports, list adds) that share the account's activity list."""
        rng = self._foreign_rng
        with self._lock:
            for _ in range(n):
                kind, people = rng.choice(("export", "import", "list_add")), rng.randint(1, 5000)
                status: dict = {"person_count": people}
                errors: list = []
                if kind == "import":
                    status.update(items_total_count=people, items_completed_count=people, error_count=1)
                    errors = [{"message": "Row 2: invalid email address"}]  # the object form
                elif kind == "list_add":
                    status["list_count"] = rng.randint(1, 5)
                rec = self._new_record(str(uuid.uuid4()), "foreign", None, self._clock())
                stamp = rec["created_at"]
                rec.update(
                    state="completed",
                    percent_done=100,
                    status=status,
                    activity_errors=errors,
                    started_at=stamp,
                    completed_at=stamp,
                )
                if kind == "export":
                    rec["_links"]["results"] = {"href": f"/v3/contact_exports/{rec['activity_id']}"}

    def _new_record(self, activity_id: str, kind: str, body: dict | None, now: float) -> dict:
        self._seq += 1
        stamp = iso(now)
        rec = {
            "activity_id": activity_id,
            "kind": kind,
            "seq": self._seq,
            "body": body,
            "created": now,
            "created_at": stamp,
            "updated_at": stamp,
            "started_at": None,
            "completed_at": None,
            "state": "initialized",
            "percent_done": 0,
            "activity_errors": [],
            "status": {},
            "_links": {"self": {"href": f"{ACTIVITIES}/{activity_id}"}},
            "reads": 0,
            "forgotten": False,
        }
        self._records[activity_id] = rec
        return rec

    def _advance(self, rec: dict, *, read: bool) -> None:
        """Move a tagging activity along its lifecycle (by elapsed time, or else by reads)."""
        if rec["kind"] != "tagging" or rec["state"] in TERMINAL_STATES:
            return
        rec["reads"] += read
        if self.seconds_to_finish is not None:
            elapsed = self._clock() - rec["created"]
            progress = elapsed / self.seconds_to_finish if self.seconds_to_finish > 0 else 1.0
            if progress < 1 / 3:
                return
        else:
            progress = rec["reads"] / self.reads_to_finish if self.reads_to_finish > 0 else 1.0
            if progress <= 0:
                return
        now = iso(self._clock())
        rec["started_at"] = rec["started_at"] or now
        rec["updated_at"] = now
        total = rec["total"]
        if progress < 1:
            rec.update(
                state="processing",
                percent_done=int(progress * 100),
                status={"items_total_count": total, "items_completed_count": int(total * progress)},
            )
            return
        outcome = next((self._outcomes[t] for t in rec["body"]["tag_ids"] if t in self._outcomes), "completed")
        done = total if outcome == "completed" else total // 2
        errors = {
            "failed": [f"Tags could not be removed from {total - done} contact(s)"],
            "timed_out": ["The activity timed out before it finished"],
        }.get(outcome, [])
        rec.update(
            state=outcome,
            percent_done=100,
            completed_at=now,
            activity_errors=errors,
            status={"items_total_count": total, "items_completed_count": done},
        )
        self._untag_completed(rec)  # a completed removal takes its tags off the contacts

    @staticmethod
    def _view(rec: dict) -> dict:
        """The activity as the API shows it."""
        keys = (
            "activity_id",
            "state",
            "created_at",
            "updated_at",
            "started_at",
            "completed_at",
            "percent_done",
            "activity_errors",
            "status",
            "_links",
        )
        return copy.deepcopy({k: rec[k] for k in keys if rec[k] is not None})
