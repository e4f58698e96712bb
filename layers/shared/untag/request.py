"""The untag request: reading it from a message, normalising it, and splitting it to Constant Contact's caps.

Pure code. ``read_request`` turns an SQS message body (bare request, EventBridge event or SNS
notification) into either an :class:`UntagRequest` in canonical form or a :class:`Rejection`
listing every problem found. ``plan_activities`` splits a request into activity bodies that
respect Constant Contact's caps, in exactly the canonical shape the API documents.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from untag.names import read_emails, read_tag_names
from untag.text import field_name, kind, lone_surrogate, short, utf8_size

ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,64}")
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
METADATA_MAX_BYTES = 4096
METADATA_MAX_DEPTH = 32
# The caps a request must respect (docs/contracts.md, the JSON Schema): a message body of at most
# 256 KiB, the intake queue's MaximumMessageSize, so that a request's plan always fits in one
# DynamoDB item (400 KB) with room for its activities; and at most ``max_activities`` activities
# (MAX_ACTIVITIES_PER_REQUEST), so that no single request can spend the daily quota.
BODY_MAX_BYTES = 262_144
DEFAULT_MAX_ACTIVITIES = 100

LIST_SOURCES = ("contact_ids", "list_ids", "tag_ids", "emails")
FLAG_SOURCES = ("all_active_contacts", "new_subscriber")
SOURCE_TYPES = LIST_SOURCES + FLAG_SOURCES
EXCLUDE_ALLOWED_WITH = ("all_active_contacts", "list_ids")
REQUEST_FIELDS = ("request_id", "source", "exclude", "tag_ids", "tag_names", "dry_run", "metadata", "schema_version")
EXCLUDE_FIELDS = ("contact_ids", "emails")
TAG_IDS_MAX = 500  # tags (ids and names) one request may remove (10 activities' worth): its result event stays small

# Constant Contact's caps for one activity.
SOURCE_CAPS = {"contact_ids": 500, "list_ids": 50, "tag_ids": 50}
TAG_IDS_CAP = 50


@dataclass(frozen=True)
class UntagRequest:
    """A valid request in canonical form: ids validated and de-duplicated, order kept."""

    request_id: str
    source_type: str
    source_ids: tuple[str, ...]  # empty for the flag sources
    tag_ids: tuple[str, ...]
    exclude_contact_ids: tuple[str, ...] = ()
    metadata: dict[str, Any] | None = None
    tag_names: tuple[str, ...] = ()  # trimmed, de-duplicated ignoring case
    exclude_emails: tuple[str, ...] = ()  # normalised (trimmed, lower-case)
    dry_run: bool = False

    @property
    def fingerprint(self) -> str:
        """A digest of what the request asks for (not of its id or metadata)."""
        parts: list[Any] = [self.source_type, self.source_ids, self.exclude_contact_ids, self.tag_ids]
        if self.tag_names or self.exclude_emails or self.dry_run:  # (older requests keep their fingerprint)
            parts += [self.tag_names, self.exclude_emails, self.dry_run]
        canonical = json.dumps(parts, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    @property
    def needs_resolution(self) -> bool:
        """Names or e-mail addresses to resolve to ids, or a preview to answer, before any activity."""
        return bool(self.tag_names or self.exclude_emails or self.source_type == "emails" or self.dry_run)

    @property
    def uses_names(self) -> bool:
        """The request names tags or contacts (its result event reports what resolved)."""
        return bool(self.tag_names or self.exclude_emails or self.source_type == "emails")


@dataclass(frozen=True)
class Rejection:
    """A message that breaks the request contract: never retried, reported as ``rejected``."""

    request_id: str
    errors: tuple[str, ...]
    original_body: str
    tag_ids: tuple[str, ...] | None = None
    source_type: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class ActivityPlan:
    """One activity to create for a request: its position and its exact API body."""

    index: int
    body: dict[str, Any] = field(hash=False)


class _NotJson(ValueError):
    """A constant Python's json module accepts but JSON does not (NaN, Infinity, -Infinity)."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(name)


def _strict_json(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


def read_request(
    body: str, message_id: str, *, max_activities: int = DEFAULT_MAX_ACTIVITIES
) -> UntagRequest | Rejection:
    """Read one SQS message body into a canonical request, or a rejection with every problem."""
    if not isinstance(body, str):
        return Rejection(message_id, (f"body: must be a string, got {kind(body)}",), str(body))
    size = utf8_size(body)
    too_big = (
        [f"body: {size} bytes, more than the cap of {BODY_MAX_BYTES} bytes on a request message"]
        if size > BODY_MAX_BYTES
        else []
    )
    try:
        document = _strict_json(body)
    except _NotJson as constant:
        return Rejection(
            message_id, tuple(too_big) + (f"body: not valid JSON ({constant} is not a JSON number)",), body
        )
    except (ValueError, TypeError, RecursionError):
        return Rejection(message_id, tuple(too_big) + ("body: not valid JSON",), body)
    request, envelope_id, errors = _unwrap(document)
    fallback_id = envelope_id or message_id
    if errors:
        return Rejection(fallback_id, tuple(too_big + errors), body)
    surrogate = lone_surrogate(request, "request")
    if surrogate:
        too_big.append(f"{surrogate}: contains a lone UTF-16 surrogate, which is not valid Unicode")
    return _validate(request, fallback_id, body, max_activities, too_big)


def _unwrap(document: Any) -> tuple[Any, str | None, list[str]]:
    """Strip an EventBridge or SNS envelope; return the request, the envelope's id, errors."""
    if isinstance(document, dict) and "detail" in document and "detail-type" in document:
        envelope_id = _str_or_none(document.get("id"))
        return document["detail"], envelope_id, []
    if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
        envelope_id = _str_or_none(document.get("MessageId"))
        message = document["Message"]
        if not isinstance(message, str):
            return None, envelope_id, ["Message: the SNS notification's Message must be a JSON string"]
        try:
            return _strict_json(message), envelope_id, []
        except (ValueError, RecursionError):
            return None, envelope_id, ["Message: the SNS notification's Message is not valid JSON"]
    return document, None, []


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and REQUEST_ID_PATTERN.fullmatch(value) else None


def _validate(
    request: Any, fallback_id: str, body: str, max_activities: int, errors: list[str]
) -> UntagRequest | Rejection:
    if not isinstance(request, dict):
        return Rejection(fallback_id, tuple(errors) + (f"request: must be a JSON object, got {kind(request)}",), body)
    unreadable = bool(errors)  # a lone surrogate somewhere: echo no field of the body back

    request_id = fallback_id
    if "request_id" in request and request["request_id"] is not None:
        raw_id = request["request_id"]
        if isinstance(raw_id, str) and REQUEST_ID_PATTERN.fullmatch(raw_id):
            request_id = raw_id
        else:
            errors.append("request_id: must be 1-128 characters of A-Z a-z 0-9 . _ : -")

    for key in request:
        if key not in REQUEST_FIELDS:
            errors.append(f"{field_name(key)}: unknown field (allowed: {', '.join(REQUEST_FIELDS)})")
    version = request.get("schema_version", "1")
    if isinstance(version, bool) or version not in ("1", 1):
        errors.append('schema_version: only "1" is supported')

    tag_names = read_tag_names(request.get("tag_names"), errors)
    tag_ids = _id_list(request.get("tag_ids"), "tag_ids", errors, required=not tag_names, allow_empty=bool(tag_names))
    if len(tag_ids) + len(tag_names) > TAG_IDS_MAX:
        where = "tag_ids and tag_names" if tag_names else "tag_ids"
        errors.append(
            f"{where}: {len(tag_ids) + len(tag_names)} tags, more than the cap of {TAG_IDS_MAX} tags per request"
        )
        tag_ids = tag_ids[:TAG_IDS_MAX]
    source_type, source_ids, nested_exclude = _source(request.get("source"), errors)
    exclude_ids, exclude_emails = _exclude(request.get("exclude"), nested_exclude, source_type, errors)
    metadata = _metadata(request.get("metadata"), errors)
    dry_run = _dry_run(request.get("dry_run"), errors)
    if not errors:
        activities = planned_activity_count(source_type, source_ids, tag_ids + tag_names)
        if activities > max_activities:
            errors.append(
                f"request: needs {activities} activities, more than the cap of {max_activities} activities "
                "per request (MAX_ACTIVITIES_PER_REQUEST); split it into smaller requests"
            )

    if errors:
        return Rejection(
            request_id,
            tuple(errors),
            body,
            tag_ids=tag_ids or None,
            source_type=source_type,
            metadata=None if unreadable else metadata,
        )
    return UntagRequest(
        request_id=request_id,
        source_type=source_type,
        source_ids=source_ids,
        tag_ids=tag_ids,
        exclude_contact_ids=exclude_ids,
        metadata=metadata,
        tag_names=tag_names,
        exclude_emails=exclude_emails,
        dry_run=dry_run,
    )


def _source(source: Any, errors: list[str]) -> tuple[Any, tuple[str, ...], Any]:
    """Return (source type or None, ids, the tolerated nested exclude or None)."""
    if source is None:
        errors.append(f"source: required, an object with exactly one of {', '.join(SOURCE_TYPES)}")
        return None, (), None
    if not isinstance(source, dict):
        errors.append(f"source: must be an object, got {kind(source)}")
        return None, (), None
    nested_exclude = source.get("exclude")
    keys = [key for key in source if key != "exclude"]
    unknown = [key for key in keys if key not in SOURCE_TYPES]
    for key in unknown:
        errors.append(f"source.{field_name(key)}: unknown source (allowed: {', '.join(SOURCE_TYPES)})")
    known = [key for key in keys if key in SOURCE_TYPES]
    if len(known) != 1:
        if not unknown:
            got = ", ".join(known) if known else "none"
            errors.append(f"source: exactly one of {', '.join(SOURCE_TYPES)} is required (got {got})")
        return None, (), nested_exclude
    source_type = known[0]
    value = source[source_type]
    if source_type in FLAG_SOURCES:
        if value is True or (isinstance(value, str) and value.strip().lower() == "true"):
            return source_type, (), nested_exclude
        errors.append(f"source.{source_type}: must be true")
        return source_type, (), nested_exclude
    if source_type == "emails":
        return source_type, read_emails(value, "source.emails", errors, required=True), nested_exclude
    ids = _id_list(value, f"source.{source_type}", errors, required=True)
    return source_type, ids, nested_exclude


def _exclude(
    exclude: Any, nested: Any, source_type: str | None, errors: list[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(contact ids, e-mail addresses) to exclude."""
    if exclude is not None and nested is not None:
        errors.append("exclude: given both at top level and inside source; give it once, at top level")
        return (), ()
    if nested is not None:
        # Tolerated variant from Constant Contact's own guide: a bare array inside source.
        exclude = {"contact_ids": nested} if isinstance(nested, list) else nested
        where = "source.exclude"
    else:
        where = "exclude"
    if exclude is None:
        return (), ()
    if not isinstance(exclude, dict):
        errors.append(f'{where}: must be an object {{"contact_ids": [...], "emails": [...]}}, got {kind(exclude)}')
        return (), ()
    for key in exclude:
        if key not in EXCLUDE_FIELDS:
            errors.append(f"{where}.{field_name(key)}: unknown field (only contact_ids and emails can be excluded)")
    ids = _id_list(exclude.get("contact_ids"), f"{where}.contact_ids", errors, required=False)
    emails = read_emails(exclude.get("emails"), f"{where}.emails", errors, required=False)
    if (ids or emails) and source_type is not None and source_type not in EXCLUDE_ALLOWED_WITH:
        errors.append(f"{where}: allowed only with source all_active_contacts or list_ids, not {source_type}")
    return ids, emails


def _dry_run(value: Any, errors: list[str]) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    errors.append(f"dry_run: must be true or false, got {kind(value)}")
    return False


def _metadata(metadata: Any, errors: list[str]) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        errors.append(f"metadata: must be a JSON object, got {kind(metadata)}")
        return None
    depth = _depth(metadata)
    if depth > METADATA_MAX_DEPTH:
        errors.append(f"metadata: nested more than {METADATA_MAX_DEPTH} levels deep")
        return None
    size = utf8_size(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False))
    if size > METADATA_MAX_BYTES:
        errors.append(f"metadata: {size} bytes serialised, at most {METADATA_MAX_BYTES} allowed")
        return None
    return metadata


def _depth(value: Any, limit: int = METADATA_MAX_DEPTH + 1) -> int:
    """How deeply a JSON value nests (counted up to ``limit``, iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level < limit:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _id_list(
    value: Any, where: str, errors: list[str], *, required: bool, allow_empty: bool = False
) -> tuple[str, ...]:
    if value is None:
        if required:
            errors.append(
                f"{where}: required, a non-empty array of ids" + (" (or give tag_names)" if where == "tag_ids" else "")
            )
        return ()
    if not isinstance(value, list):
        errors.append(f"{where}: must be an array of ids, got {kind(value)}")
        return ()
    if not value and required and not allow_empty:
        errors.append(f"{where}: must not be empty")
        return ()
    bad = [item for item in value if not (isinstance(item, str) and ID_PATTERN.fullmatch(item))]
    if bad:
        shown = ", ".join(short(item) for item in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        errors.append(f"{where}: ids must match ^[A-Za-z0-9-]{{1,64}}$; invalid: {shown}{more}")
        return ()
    return tuple(dict.fromkeys(value))


def plan_activities(request: UntagRequest) -> list[ActivityPlan]:
    """Split a request into the activities Constant Contact accepts, in canonical body form."""
    tag_chunks = _chunks(request.tag_ids, TAG_IDS_CAP)
    if request.source_type in FLAG_SOURCES:
        sources = [{request.source_type: True}]
    else:
        cap = SOURCE_CAPS[request.source_type]
        sources = [{request.source_type: list(ids)} for ids in _chunks(request.source_ids, cap)]
    plans = []
    for index, (source, tags) in enumerate(product(sources, tag_chunks)):
        body: dict[str, Any] = {"source": source}
        if request.exclude_contact_ids:
            body["exclude"] = {"contact_ids": list(request.exclude_contact_ids)}
        body["tag_ids"] = list(tags)
        plans.append(ActivityPlan(index, body))
    return plans


def planned_activity_count(source_type: str | None, source_ids: tuple[str, ...], tag_ids: tuple[str, ...]) -> int:
    """How many activities ``plan_activities`` makes for a request, without building them."""
    cap = SOURCE_CAPS.get("contact_ids" if source_type == "emails" else source_type or "", 1)
    sources = 1 if source_type in FLAG_SOURCES else -(-len(source_ids) // cap)
    return max(sources, 1) * max(-(-len(tag_ids) // TAG_IDS_CAP), 1)


def _chunks(items: tuple[str, ...], size: int) -> list[tuple[str, ...]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def can_share_activities(request: UntagRequest) -> bool:
    """True for requests small enough to be merged with others removing the same tags."""
    return (
        request.source_type == "contact_ids"
        and not request.exclude_contact_ids
        and len(request.source_ids) <= SOURCE_CAPS["contact_ids"]
        and len(request.tag_ids) <= TAG_IDS_CAP
    )
