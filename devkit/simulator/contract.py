"""What the Constant Contact V3 API accepts and answers, as the simulator enforces it: paths, id rules, the
contacts_taggings_remove body, contact and tag query values, timestamps, error bodies, list cursors, and
the sliding-window rate limit."""

from __future__ import annotations

import base64
import functools
import json
import re
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

ACTIVITIES = "/v3/activities"
TAGGINGS_REMOVE = "/v3/activities/contacts_taggings_remove"
TOKEN_PATH = "/oauth2/default/v1/token"
AUTHORIZE_PATH = "/oauth2/default/v1/authorize"
CONTACTS = "/v3/contacts"
CONTACT_TAGS = "/v3/contact_tags"

ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,64}")  # always used with fullmatch
ID_SOURCES = {"contact_ids": 500, "list_ids": 50, "tag_ids": 50}  # source key -> max items
FLAG_SOURCES = ("all_active_contacts", "new_subscriber")
EXCLUDABLE_SOURCES = ("all_active_contacts", "list_ids")
MAX_TAG_IDS = 50
TERMINAL_STATES = ("completed", "cancelled", "failed", "timed_out")
FILTERABLE_STATES = ("processing", *TERMINAL_STATES)
ACCESS_TOKEN_LIFETIME = 86_400
PERMISSIONS = ("explicit", "implicit", "not_set", "pending_confirmation", "temp_hold", "unsubscribed")
ACTIVE_PERMISSIONS = ("explicit", "implicit")  # status `active`
CONTACT_STATUSES = ("all", "active", "deleted", "not_set", "pending_confirmation", "temp_hold", "unsubscribed")
CONTACT_INCLUDES = ("custom_fields", "list_memberships", "phone_numbers", "street_addresses", "taggings", "notes")
MAX_QUERY_LISTS = 25  # GET /contacts?lists=
MAX_QUERY_TAGS = 50  # GET /contacts?tags=
MAX_CONTACT_IDS = 50  # list_memberships and taggings a contact holds (the schema's maxItems)
MAX_TAG_NAME = 255
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

UNAUTHORIZED = {"error_key": "unauthorized", "error_message": "Unauthorized"}
THROTTLED = {"error_key": "throttled", "error_message": "Too Many Requests"}
QUOTA_EXCEEDED = {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}

# (HTTP status, JSON body) or (status, body, response headers); body None: no body. None instead of a
# Response means "drop the connection".
Response = tuple[int, Any] | tuple[int, Any, dict[str, str]]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=1 << 16)  # a contact's stamps are mostly one and the same
def iso_us(us: int) -> str:
    """Epoch microseconds as ISO-8601 UTC with six fraction digits (``2026-12-02T06:40:00.123001Z``): a
    contact's stamp carries a microsecond tie-break, and a fixed width keeps string order the time order."""
    return (EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> int | None:
    """An ISO-8601 date-time (or date) as epoch microseconds, UTC unless it has an offset; None if malformed."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def api_errors(key: str, *messages: str) -> list[dict]:
    return [{"error_key": key, "error_message": m} for m in messages]


def _check_ids(field: str, value: Any, limit: int | None) -> list[str]:
    if not isinstance(value, list) or not value:
        return [f"{field} must be a non-empty array of strings"]
    problems = []
    if limit is not None and len(value) > limit:
        problems.append(f"{field} has {len(value)} items (max {limit})")
    bad = [v for v in value if not isinstance(v, str) or not ID_PATTERN.fullmatch(v)]
    if bad:
        problems.append(f"{field} has {len(bad)} invalid id(s), e.g. {bad[0]!r}")
    strings = [v for v in value if isinstance(v, str)]
    if len(set(strings)) != len(strings):
        problems.append(f"{field} contains duplicate ids")
    return problems


def validate_tagging_body(body: Any) -> list[str]:
    """Problems with a contacts_taggings_remove body under the canonical schema ([] if valid)."""
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    problems = [f"unknown top-level key {k!r}" for k in body if k not in ("source", "exclude", "tag_ids")]
    kind = None
    source = body.get("source")
    if not isinstance(source, dict):
        problems.append("source is required and must be an object")
    else:
        problems += [f"unknown key source.{k}" for k in source if k not in (*ID_SOURCES, *FLAG_SOURCES)]
        known = [k for k in source if k in ID_SOURCES or k in FLAG_SOURCES]
        if len(known) != 1:
            problems.append(f"source must have exactly one source type, got {known}")
        else:
            kind = known[0]
            if kind in FLAG_SOURCES:
                if source[kind] is not True:
                    problems.append(f"source.{kind} must be the JSON boolean true")
            else:
                problems += _check_ids(f"source.{kind}", source[kind], ID_SOURCES[kind])
    if "exclude" in body:
        exclude = body["exclude"]
        if not isinstance(exclude, dict) or set(exclude) != {"contact_ids"}:
            problems.append("exclude must be an object with only contact_ids")
        else:
            problems += _check_ids("exclude.contact_ids", exclude["contact_ids"], None)
        if kind is not None and kind not in EXCLUDABLE_SOURCES:
            problems.append(f"exclude is only allowed with source {' or '.join(EXCLUDABLE_SOURCES)}")
    problems += _check_ids("tag_ids", body.get("tag_ids"), MAX_TAG_IDS)
    return problems


def strict_json(raw: bytes) -> Any:
    """json.loads that also refuses duplicate keys and NaN/Infinity (ValueError)."""

    def pairs(items: list[tuple[str, Any]]) -> dict:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("duplicate keys")
        return dict(items)

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw, object_pairs_hook=pairs, parse_constant=constant)


def item_count(body: dict) -> int:
    """Deterministic number of contacts an activity touches."""
    source = body["source"]
    kind = next(iter(source))
    if kind == "contact_ids":
        return len(source[kind])
    total = {"all_active_contacts": 1000, "new_subscriber": 100}.get(kind) or 10 * len(source[kind])
    return max(0, total - len(body.get("exclude", {}).get("contact_ids", [])))


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"sim:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        return None
    prefix, _, seq = text.partition(":")
    return int(seq) if prefix == "sim" and seq.isascii() and seq.isdigit() else None


def encode_query_cursor(params: dict[str, Any]) -> str:
    """An opaque cursor that carries a query and a position (``next``), like Constant Contact's own
    (base64 of ``limit=1&next=...``)."""
    return base64.urlsafe_b64encode(urlencode(params).encode()).decode().rstrip("=")


def decode_query_cursor(cursor: str) -> dict[str, str] | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    params = dict(pairs)
    return params if len(params) == len(pairs) and "next" in params else None


def admit(window: deque[float], rate: float, now: float) -> bool:
    """Sliding-window limiter: at most max(1, int(rate)) admitted requests per max(1, int(rate))/rate s."""
    capacity = max(1, int(rate))
    span = capacity / rate
    while window and window[0] <= now - span:
        window.popleft()
    if len(window) >= capacity:
        return False
    window.append(now)
    return True


def default_fault_body(path: str, status: int) -> Any:
    if path.startswith("/oauth2"):
        error = {400: "invalid_grant", 401: "invalid_client", 429: "too_many_requests"}.get(status, "server_error")
        return {"error": error, "error_description": "Forced by the simulator"}
    if status == 429:
        return THROTTLED
    if status == 401:
        return UNAUTHORIZED
    return api_errors(
        {404: "not_found", 503: "service_unavailable"}.get(status, "server_error"), f"Forced HTTP {status}"
    )


def recorded_body(path: str, raw: bytes) -> Any:
    """The request body as kept in `calls`: never a token."""
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if path == TOKEN_PATH:
        form = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(text, keep_blank_values=True).items()}
        secret = ("token", "secret", "code")  # tokens, the client secret, the code and its verifier
        return {k: ("<redacted>" if any(word in k for word in secret) else v) for k, v in form.items()}
    try:
        return json.loads(text)
    except ValueError:
        return text
