"""The simulator's contacts and tags: the account's state, the controls tests use to shape it, and what a
completed tag removal does to it. The read endpoints are in devkit.simulator.contacts.

Mixed into ``ConstantContactSimulator``, whose state it uses: ``_lock``, ``_clock``, ``_records`` and
``seconds_to_finish``. Every change stamps a contact with the simulator's clock floored to the millisecond,
plus a microsecond tie-break when needed, so that stamps strictly increase: ordered by (updated_at,
contact_id), an incremental sync by ``updated_after`` that follows the next links misses nothing.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devkit.simulator.contract import (
    ACTIVE_PERMISSIONS,
    ID_PATTERN,
    MAX_CONTACT_IDS,
    MAX_TAG_NAME,
    PERMISSIONS,
    iso_us,
)

NEW_SUBSCRIBER_DAYS = 30


@dataclass(slots=True, eq=False)
class Contact:
    """One contact as the simulator keeps it; stamps are epoch microseconds."""

    contact_id: str
    email: str
    permission: str
    first_name: str | None
    last_name: str | None
    lists: list[str]
    tags: list[str]
    created: int
    updated: int
    email_updated: int
    deleted: int | None = None

    @property
    def status(self) -> str:
        """The contact's status as `GET /contacts?status=` names it."""
        if self.deleted is not None:
            return "deleted"
        return "active" if self.permission in ACTIVE_PERMISSIONS else self.permission

    def view(self, include: Iterable[str] = ()) -> dict:
        """The contact as the API shows it (getContactById_200_response), with the sub-resources asked for."""
        email: dict[str, Any] = {
            "address": self.email,
            "permission_to_send": self.permission,
            "created_at": iso_us(self.created),
            "updated_at": iso_us(self.email_updated),
        }
        body: dict[str, Any] = {"contact_id": self.contact_id, "email_address": email}
        if self.deleted is not None:  # the spec: a deleted contact's address carries the opt-out
            email.update(opt_out_source="Account", opt_out_date=iso_us(self.deleted))
        if self.first_name is not None:
            body["first_name"] = self.first_name
        if self.last_name is not None:
            body["last_name"] = self.last_name
        body.update(
            create_source="Account",
            update_source="Account",
            created_at=iso_us(self.created),
            updated_at=iso_us(self.updated),
        )
        if self.deleted is not None:
            body["deleted_at"] = iso_us(self.deleted)[:10]  # the schema's format is `date`
        for name in include:
            body[name] = list(self.lists if name == "list_memberships" else self.tags if name == "taggings" else ())
        return body


@dataclass(slots=True, eq=False)
class Tag:
    name: str
    seq: int
    created: int
    updated: int
    source: str

    def view(self, tag_id: str, contacts_count: int | None) -> dict:
        body: dict[str, Any] = {"tag_id": tag_id, "name": self.name}
        if contacts_count is not None:
            body["contacts_count"] = contacts_count
        body.update(created_at=iso_us(self.created), updated_at=iso_us(self.updated), tag_source=self.source)
        return body


class ContactState:
    """The account's tags and contacts, and the test controls that shape them."""

    _lock: Any
    _clock: Any
    _records: dict[str, dict]
    _advance: Any
    seconds_to_finish: float | None

    def _init_contacts(self, seed: int) -> None:
        self._ids = random.Random(seed + 2)  # contact and tag ids: uuid4 shaped, reproducible
        self._tag_records: dict[str, Tag] = {}  # creation order
        self._tag_seq = 0
        self._tag_counts: dict[str, int] = {}  # tag id -> contacts (not deleted) carrying it
        self._contact_records: dict[str, Contact] = {}
        self._emails: dict[str, str] = {}  # lower-cased address -> contact id
        self._order: list[tuple[int, str]] = []  # (updated, contact_id), ascending
        self._last_stamp = 0
        self._contacts_version = 0  # bumped by every contact change (the count cache's key)
        self._count_cache: tuple[int | None, dict] = (None, {})  # version, criteria -> contacts_count
        self._seed_serial = 0
        self._untagged: set[str] = set()  # completed removal activities already applied to the contacts

    # ----- test controls: tags ---------------------------------------------------------
    def add_tag(self, name: str, tag_id: str | None = None, *, tag_source: str = "Account") -> str:
        """A new tag; names are unique ignoring case (ValueError on a duplicate)."""
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_TAG_NAME:
            raise ValueError(f"a tag name has 1..{MAX_TAG_NAME} characters, got {name!r}")
        with self._lock:
            tag_id = self._new_id(tag_id, self._tag_records)
            if any(tag.name.casefold() == name.casefold() for tag in self._tag_records.values()):
                raise ValueError(f"a tag named {name!r} exists already (names are unique ignoring case)")
            self._tag_seq += 1
            stamp = self._stamp_now()  # tags need no tie-break: they are listed in creation order
            self._tag_records[tag_id] = Tag(name, self._tag_seq, stamp, stamp, tag_source)
            self._tag_counts[tag_id] = 0
            return tag_id

    def delete_tag(self, tag_id: str) -> None:
        """Delete a tag (KeyError if unknown); the contacts carrying it lose it, which updates them."""
        with self._lock:
            del self._tag_records[tag_id]
            for contact in self._contact_records.values():
                if tag_id in contact.tags:
                    self._retag(contact, [t for t in contact.tags if t != tag_id])
            del self._tag_counts[tag_id]

    @property
    def tags(self) -> dict[str, str]:
        """tag id -> name, in creation order."""
        with self._lock:
            return {tag_id: tag.name for tag_id, tag in self._tag_records.items()}

    # ----- test controls: contacts -----------------------------------------------------
    def add_contact(
        self,
        email: str,
        *,
        contact_id: str | None = None,
        list_ids: Iterable[str] = (),
        tag_ids: Iterable[str] = (),
        permission: str = "implicit",
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> str:
        """A new contact; its email address is kept as given and unique ignoring case (ValueError)."""
        if permission not in PERMISSIONS:
            raise ValueError(f"permission must be one of {PERMISSIONS}, got {permission!r}")
        with self._lock:
            contact_id = self._new_id(contact_id, self._contact_records)
            self._check_email(email)
            lists, tags = self._check_lists(list_ids), self._check_tags(tag_ids)
            stamp = self._stamp()
            self._insert(Contact(contact_id, email, permission, first_name, last_name, lists, tags, *[stamp] * 3))
            return contact_id

    def update_contact(
        self,
        contact_id: str,
        *,
        email: str | None = None,
        list_ids: Iterable[str] | None = None,
        tag_ids: Iterable[str] | None = None,
        permission: str | None = None,
    ) -> None:
        """Change a contact (KeyError if unknown): lists and tags are replaced when given; updated_at moves on."""
        if permission is not None and permission not in PERMISSIONS:
            raise ValueError(f"permission must be one of {PERMISSIONS}, got {permission!r}")
        with self._lock:
            contact = self._contact_records[contact_id]
            lists = None if list_ids is None else self._check_lists(list_ids)
            tags = None if tag_ids is None else self._check_tags(tag_ids)
            if email is not None and email.lower() != contact.email.lower():
                self._check_email(email)
                del self._emails[contact.email.lower()]
                self._emails[email.lower()] = contact_id
            if lists is not None:
                contact.lists = lists
            if tags is not None:
                self._count_tags(contact, -1)
                contact.tags = tags
                self._count_tags(contact, +1)
            if email is not None or permission is not None:
                contact.email = email if email is not None else contact.email
                contact.permission = permission or contact.permission
                contact.email_updated = self._touch(contact)
            else:
                self._touch(contact)

    def delete_contact(self, contact_id: str) -> None:
        """Delete a contact (KeyError if unknown, ValueError if deleted already): it keeps its id, address,
        lists and tags, and is listed only by `status=all` or `status=deleted`."""
        with self._lock:
            contact = self._contact_records[contact_id]
            if contact.deleted is not None:
                raise ValueError(f"contact {contact_id} is deleted already")
            self._count_tags(contact, -1)
            contact.deleted = contact.email_updated = self._touch(contact)

    def seed_contacts(
        self, n: int, *, domain: str = "example.com", list_ids: Iterable[str] = (), tag_ids: Iterable[str] = ()
    ) -> list[tuple[str, str]]:
        """``n`` new contacts (``sim-000001@domain``, ...; implicit permission) on the given lists and tags:
        [(email, contact_id)], in the order they were added (a microsecond apart). 100,000 take about a second."""
        with self._lock:
            lists, tags = self._check_lists(list_ids), self._check_tags(tag_ids)
            records, emails, order, counts = self._contact_records, self._emails, self._order, self._tag_counts
            added: list[tuple[str, str]] = []
            stamp = self._stamp() - 1  # one stamp per contact, a microsecond apart
            while len(added) < n:
                self._seed_serial += 1
                email = f"sim-{self._seed_serial:06d}@{domain}"
                contact_id = self._random_id()
                if email.lower() in emails or contact_id in records:
                    continue
                stamp += 1
                records[contact_id] = Contact(
                    contact_id, email, "implicit", None, None, list(lists), list(tags), stamp, stamp, stamp
                )
                emails[email.lower()] = contact_id
                order.append((stamp, contact_id))
                added.append((email, contact_id))
            self._last_stamp = max(self._last_stamp, stamp)
            for tag_id in tags:
                counts[tag_id] += len(added)
            self._contacts_version += 1
            return added

    @property
    def contacts(self) -> dict[str, dict]:
        """contact id -> the contact as the API shows it with ``include=list_memberships,taggings``
        (deleted contacts too), in the order they were added."""
        with self._lock:
            self._catch_up()
            return {cid: c.view(("list_memberships", "taggings")) for cid, c in self._contact_records.items()}

    # ----- what a completed tag removal does -------------------------------------------
    def _untag_completed(self, rec: dict) -> None:
        """Once a tag removal activity has completed (and is the stored record, not a peek at it): its tags
        leave the contacts it selects (contact ids the simulator does not know are ignored)."""
        activity_id = rec["activity_id"]
        if (
            rec["kind"] != "tagging"
            or rec["state"] != "completed"
            or activity_id in self._untagged
            or self._records.get(activity_id) is not rec
        ):
            return
        self._untagged.add(activity_id)
        body = rec["body"]
        drop = set(body["tag_ids"])
        excluded = set(body.get("exclude", {}).get("contact_ids", ()))
        for contact in self._selected(body["source"]):
            if contact.deleted is None and contact.contact_id not in excluded and not drop.isdisjoint(contact.tags):
                self._retag(contact, [t for t in contact.tags if t not in drop])

    def _selected(self, source: dict) -> list[Contact]:
        kind, value = next(iter(source.items()))
        everyone = list(self._contact_records.values())
        if kind == "contact_ids":
            return [self._contact_records[cid] for cid in value if cid in self._contact_records]
        if kind in ("list_ids", "tag_ids"):
            wanted = set(value)
            return [c for c in everyone if not wanted.isdisjoint(c.lists if kind == "list_ids" else c.tags)]
        since = self._stamp_now() - NEW_SUBSCRIBER_DAYS * 86_400_000_000
        return [c for c in everyone if c.status == "active" and (kind != "new_subscriber" or c.created >= since)]

    def _catch_up(self) -> None:
        """Activities that finish by elapsed time finish (and untag) whether or not anyone reads them."""
        if self.seconds_to_finish is not None:
            for rec in self._records.values():
                self._advance(rec, read=False)

    # ----- helpers (under the lock) ----------------------------------------------------
    def _stamp_now(self) -> int:
        return int(self._clock() * 1000) * 1000

    def _stamp(self) -> int:
        self._last_stamp = max(self._stamp_now(), self._last_stamp + 1)
        return self._last_stamp

    def _random_id(self) -> str:
        """A uuid4-shaped id from the seeded generator (the version and variant bits set)."""
        bits = self._ids.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48) | (0x4000 << 64) | (0x8000 << 48)
        text = f"{bits:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def _new_id(self, given: str | None, taken: dict) -> str:
        if given is None:
            given = self._random_id()
        elif not isinstance(given, str) or not ID_PATTERN.fullmatch(given):
            raise ValueError(f"an id has 1..64 letters, digits or '-', got {given!r}")
        if given in taken:
            raise ValueError(f"id {given} exists already")
        return given

    def _check_email(self, email: str) -> None:
        if not isinstance(email, str) or "@" not in email or email != email.strip():
            raise ValueError(f"not an email address: {email!r}")
        if email.lower() in self._emails:
            raise ValueError(f"a contact with the address {email!r} exists already (unique ignoring case)")

    @staticmethod
    def _check_lists(list_ids: Iterable[str]) -> list[str]:
        lists = list(dict.fromkeys(list_ids))
        bad = [i for i in lists if not isinstance(i, str) or not ID_PATTERN.fullmatch(i)]
        if bad or len(lists) > MAX_CONTACT_IDS:
            raise ValueError(f"list ids: at most {MAX_CONTACT_IDS} valid ids, got {len(lists)} ({bad[:1]} invalid)")
        return lists

    def _check_tags(self, tag_ids: Iterable[str]) -> list[str]:
        tags = list(dict.fromkeys(tag_ids))
        unknown = [t for t in tags if t not in self._tag_records]
        if unknown or len(tags) > MAX_CONTACT_IDS:
            raise ValueError(f"tag ids: at most {MAX_CONTACT_IDS} known tags (add_tag), got {len(tags)}: {unknown}")
        return tags

    def _insert(self, contact: Contact) -> None:
        self._contact_records[contact.contact_id] = contact
        self._emails[contact.email.lower()] = contact.contact_id
        self._order.append((contact.updated, contact.contact_id))  # the newest stamp: the end of the order
        self._count_tags(contact, +1)
        self._contacts_version += 1

    def _touch(self, contact: Contact) -> int:
        """A new updated_at for a changed contact; it moves to the end of the order."""
        del self._order[bisect.bisect_left(self._order, (contact.updated, contact.contact_id))]
        contact.updated = self._stamp()
        self._order.append((contact.updated, contact.contact_id))
        self._contacts_version += 1
        return contact.updated

    def _retag(self, contact: Contact, tags: list[str]) -> None:
        self._count_tags(contact, -1)
        contact.tags = tags
        self._count_tags(contact, +1)
        self._touch(contact)

    def _count_tags(self, contact: Contact, delta: int) -> None:
        if contact.deleted is None:
            for tag_id in contact.tags:
                self._tag_counts[tag_id] += delta
