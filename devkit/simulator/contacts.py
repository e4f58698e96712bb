"""The simulator's contact and tag read endpoints: ``GET /v3/contacts`` and ``GET /v3/contact_tags``.

Mixed into ``ConstantContactSimulator`` (the state and its controls are in devkit.simulator.contact_state).
Both page with opaque cursors that carry the query and the position, like Constant Contact's (base64 of
``limit=...&next=...``): a next link stays valid and is followed without a snapshot, so what changed meanwhile
shows up on a later page. Contacts come ordered by (updated_at, contact_id), tags in creation order.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from devkit.simulator.contact_state import Contact, ContactState
from devkit.simulator.contract import (
    CONTACT_INCLUDES,
    CONTACT_STATUSES,
    CONTACT_TAGS,
    CONTACTS,
    ID_PATTERN,
    MAX_QUERY_LISTS,
    MAX_QUERY_TAGS,
    Response,
    decode_query_cursor,
    encode_query_cursor,
    parse_instant,
)

DATE_FILTERS = ("updated_after", "updated_before", "created_after", "created_before")
CONTACT_PARAMS = ("status", "email", "lists", "tags", *DATE_FILTERS, "include", "include_count", "limit")
UNMODELLED = ("segment_id", "optout_after", "optout_before", "sms_status")  # in the spec; not simulated
TAG_PARAMS = ("limit", "include_count")


@dataclass(frozen=True)
class ContactCriteria:
    """What `GET /contacts` selects; the filters combine with AND."""

    statuses: frozenset[str] | None = None  # None: every contact that is not deleted
    email: str | None = None  # lower-cased
    lists: frozenset[str] | None = None  # a member of any
    tags: frozenset[str] | None = None  # carries any
    updated_after: int | None = None  # epoch microseconds, strictly after
    updated_before: int | None = None
    created_after: int | None = None
    created_before: int | None = None

    def matches(self, c: Contact) -> bool:
        if self.statuses is None:
            if c.deleted is not None:
                return False
        elif "all" not in self.statuses and c.status not in self.statuses:
            return False
        return (
            (self.email is None or c.email.lower() == self.email)
            and (self.lists is None or not self.lists.isdisjoint(c.lists))
            and (self.tags is None or not self.tags.isdisjoint(c.tags))
            and (self.updated_after is None or c.updated > self.updated_after)
            and (self.updated_before is None or c.updated < self.updated_before)
            and (self.created_after is None or c.created > self.created_after)
            and (self.created_before is None or c.created < self.created_before)
        )


class ContactApi(ContactState):
    """``GET /v3/contacts`` and ``GET /v3/contact_tags``."""

    _bad_request: Any

    def _contact_endpoint(self, method: str, path: str) -> Callable[[dict], Response] | None:
        """The handler of a contact or tag read, if the request is one."""
        if method != "GET":
            return None
        return {CONTACTS: self._list_contacts, CONTACT_TAGS: self._list_tags}.get(path)

    # ----- GET /v3/contacts ------------------------------------------------------------
    def _list_contacts(self, query: dict) -> Response:
        params, position, problems = _read_query(query, CONTACT_PARAMS, UNMODELLED)
        limit, include_count = _limit(params, problems), _flag(params, "include_count", problems)
        criteria, include = _contact_criteria(params, problems)
        after = None
        if position is not None:
            stamp, _, contact_id = position.partition(":")
            if stamp.isascii() and stamp.isdigit() and ID_PATTERN.fullmatch(contact_id):
                after = (int(stamp), contact_id)
            else:
                problems.append("cursor is not one this server issued")
        if problems:
            return self._bad_request("GET", CONTACTS, problems)
        with self._lock:
            self._catch_up()
            page = self._contact_page(criteria, after, limit + 1)
            body: dict[str, Any] = {"contacts": [c.view(include) for c in page[:limit]]}
            if include_count:
                body["contacts_count"] = self._contact_count(criteria)
            last = f"{page[limit - 1].updated}:{page[limit - 1].contact_id}" if len(page) > limit else None
        if last is not None:
            carried = {k: v for k, v in params.items() if k != "limit"}
            cursor = encode_query_cursor({**carried, "limit": limit, "next": last})
            body["_links"] = {"next": {"href": f"{CONTACTS}?{urlencode({'cursor': cursor, 'limit': limit})}"}}
        return 200, body

    def _contact_page(self, criteria: ContactCriteria, after: tuple[int, str] | None, size: int) -> list[Contact]:
        """Up to ``size`` matching contacts past the position ``after`` (an (updated, contact_id))."""
        order, records = self._order, self._contact_records
        start = 0 if after is None else bisect_right(order, after)
        if criteria.updated_after is not None:
            start = max(start, bisect_left(order, (criteria.updated_after + 1,)))
        if criteria.email is not None:  # addresses are unique: one candidate at most
            contact = records.get(self._emails.get(criteria.email, ""))
            found = contact is not None and bisect_left(order, (contact.updated, contact.contact_id)) >= start
            return [contact] if found and criteria.matches(contact) else []
        page: list[Contact] = []
        for index in range(start, len(order)):
            contact = records[order[index][1]]
            if criteria.matches(contact):
                page.append(contact)
                if len(page) == size:
                    break
        return page

    def _contact_count(self, criteria: ContactCriteria) -> int:
        """How many contacts match (every page of a listing says it); cached until a contact changes."""
        version, counts = self._count_cache
        if version != self._contacts_version:
            counts = {}
            self._count_cache = (self._contacts_version, counts)
        if criteria not in counts:
            counts[criteria] = len(self._contact_page(criteria, None, len(self._order) + 1))
        return counts[criteria]

    # ----- GET /v3/contact_tags --------------------------------------------------------
    def _list_tags(self, query: dict) -> Response:
        params, position, problems = _read_query(query, TAG_PARAMS)
        limit, include_count = _limit(params, problems), _flag(params, "include_count", problems)
        if position is not None and not (position.isascii() and position.isdigit()):
            problems.append("cursor is not one this server issued")
        if problems:
            return self._bad_request("GET", CONTACT_TAGS, problems)
        after = int(position or 0)
        page: list[dict] = []
        more = False
        with self._lock:
            self._catch_up()
            for tag_id, tag in self._tag_records.items():  # creation order
                if tag.seq <= after:
                    continue
                if len(page) == limit:
                    more = True
                    break
                page.append(tag.view(tag_id, self._tag_counts[tag_id] if include_count else None))
                last_seq = tag.seq
        body: dict[str, Any] = {"tags": page}
        if more:
            carried = {k: v for k, v in params.items() if k != "limit"}
            cursor = encode_query_cursor({**carried, "limit": limit, "next": last_seq})
            body["_links"] = {"next": {"href": f"{CONTACT_TAGS}?{urlencode({'limit': limit, 'cursor': cursor})}"}}
        return 200, body


# ----- query parameters ------------------------------------------------------------------
def _read_query(
    query: dict, allowed: tuple[str, ...], unmodelled: tuple[str, ...] = ()
) -> tuple[dict[str, str], str | None, list[str]]:
    """The parameters (a cursor's carried query; a `limit` beside the cursor wins), the cursor's position,
    and the problems: repeated, unknown or unmodelled parameters, a cursor this server did not issue."""
    problems = [f"query parameter {k!r} repeated" for k, v in query.items() if len(v) > 1]
    params = {k: v[0] for k, v in query.items()}
    position = None
    if "cursor" in params:
        carried = decode_query_cursor(params.pop("cursor")) or {}
        if "next" not in carried:
            problems.append("cursor is not one this server issued")
        problems += [
            f"query parameter {k!r} cannot accompany a cursor (it carries the query)" for k in params if k != "limit"
        ]
        position = carried.pop("next", None)
        params = {**carried, **params}
    for key in params:
        if key in unmodelled:
            problems.append(f"query parameter {key!r} is not modelled by the simulator")
        elif key not in allowed:
            problems.append(f"unknown query parameter {key!r}")
    return params, position, problems


def _limit(params: dict[str, str], problems: list[str]) -> int:
    text = params.get("limit", "50")
    limit = int(text) if re.fullmatch(r"[0-9]{1,4}", text) else 0
    if not 1 <= limit <= 500:
        problems.append(f"limit must be an integer 1..500, got {text!r}")
    return limit


def _flag(params: dict[str, str], name: str, problems: list[str]) -> bool:
    text = params.get(name, "false")
    if text not in ("true", "false"):
        problems.append(f"{name} must be true or false, got {text!r}")
    return text == "true"


def _csv(params: dict[str, str], name: str, problems: list[str], valid: Callable[[str], bool]) -> list[str] | None:
    if name not in params:
        return None
    values = params[name].split(",")
    bad = [v for v in values if not valid(v)]
    if bad:
        problems.append(f"{name} has invalid value(s) {bad[:3]!r}")
    return values


def _contact_criteria(params: dict[str, str], problems: list[str]) -> tuple[ContactCriteria, tuple[str, ...]]:
    """The filters of a `GET /contacts` and the sub-resources it asks for (`include`)."""
    statuses = _csv(params, "status", problems, CONTACT_STATUSES.__contains__)
    lists = _csv(params, "lists", problems, lambda v: bool(ID_PATTERN.fullmatch(v)))
    tags = _csv(params, "tags", problems, lambda v: bool(ID_PATTERN.fullmatch(v)))
    include = _csv(params, "include", problems, CONTACT_INCLUDES.__contains__) or []
    for name, values, cap in (("lists", lists, MAX_QUERY_LISTS), ("tags", tags, MAX_QUERY_TAGS)):
        if values is not None and len(values) > cap:
            problems.append(f"{name} has {len(values)} ids (max {cap})")
    email = params["email"].strip().lower() if "email" in params else None
    if email == "":
        problems.append("email must not be empty")
    stamps: dict[str, int | None] = {}
    for name in DATE_FILTERS:
        stamps[name] = parse_instant(params[name]) if name in params else None
        if name in params and stamps[name] is None:
            problems.append(f"{name} must be an ISO-8601 date-time, got {params[name]!r}")
    criteria = ContactCriteria(
        statuses=None if statuses is None else frozenset(statuses),
        email=email,
        lists=None if lists is None else frozenset(lists),
        tags=None if tags is None else frozenset(tags),
        **stamps,
    )
    return criteria, tuple(dict.fromkeys(include))
