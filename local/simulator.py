"""Stateful Constant Contact V3 simulator: the tag-removal activity API and OAuth2 token endpoint over real HTTP.

Serves `POST /v3/activities/contacts_taggings_remove`, `GET /v3/activities/{id}`,
`GET /v3/activities` and `POST /oauth2/default/v1/token` on 127.0.0.1 with the standard
library only. It enforces the API rules strictly (every request that breaks them is listed in
`malformed`), models rate limits, the daily quota, rotating refresh tokens and the activity
lifecycle, and lets tests inject faults. Used by the tests, `make run` and the benchmarks.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

ACTIVITIES = "/v3/activities"
TAGGINGS_REMOVE = "/v3/activities/contacts_taggings_remove"
TOKEN_PATH = "/oauth2/default/v1/token"

ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,64}")  # always used with fullmatch
ID_SOURCES = {"contact_ids": 500, "list_ids": 50, "tag_ids": 50}  # source key -> max items
FLAG_SOURCES = ("all_active_contacts", "new_subscriber")
EXCLUDABLE_SOURCES = ("all_active_contacts", "list_ids")
MAX_TAG_IDS = 50
TERMINAL_STATES = ("completed", "cancelled", "failed", "timed_out")
FILTERABLE_STATES = ("processing", *TERMINAL_STATES)
ACCESS_TOKEN_LIFETIME = 86_400

UNAUTHORIZED = {"error_key": "unauthorized", "error_message": "Unauthorized"}
THROTTLED = {"error_key": "throttled", "error_message": "Too Many Requests"}
QUOTA_EXCEEDED = {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}

Response = tuple[int, Any]  # (HTTP status, JSON body); None instead means "drop the connection"


@dataclass(frozen=True)
class Call:
    """One HTTP request as the simulator saw it. `body` is the REQUEST body (parsed JSON, the
    token form with secrets redacted, or raw text); `status` is 0 when the connection was dropped."""

    method: str
    path: str
    query: dict
    status: int
    body: Any
    at: float


@dataclass
class _Fault:
    method: str
    path_prefix: str
    status: int
    body: Any
    count: int
    delay: float
    drop: bool


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _errors(key: str, *messages: str) -> list[dict]:
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


def _strict_json(raw: bytes) -> Any:
    """json.loads that also refuses duplicate keys and NaN/Infinity (ValueError)."""
    def pairs(items: list[tuple[str, Any]]) -> dict:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("duplicate keys")
        return dict(items)

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw, object_pairs_hook=pairs, parse_constant=constant)


def _item_count(body: dict) -> int:
    """Deterministic number of contacts an activity touches."""
    source = body["source"]
    kind = next(iter(source))
    if kind == "contact_ids":
        return len(source[kind])
    total = {"all_active_contacts": 1000, "new_subscriber": 100}.get(kind) or 10 * len(source[kind])
    return max(0, total - len(body.get("exclude", {}).get("contact_ids", [])))


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"sim:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        return None
    prefix, _, seq = text.partition(":")
    return int(seq) if prefix == "sim" and seq.isascii() and seq.isdigit() else None


class ConstantContactSimulator:
    """In-process fake of the Constant Contact V3 API. See the module docstring."""

    def __init__(self, *, rate_limit_per_second: float | None = 4.0, daily_quota: int | None = 10_000,
                 reads_to_finish: int = 2, seconds_to_finish: float | None = None,
                 latency: float = 0.0, rotating_refresh_tokens: bool = True,
                 access_token_ttl: float | None = None, fault_rate: float = 0.0, seed: int = 0,
                 client_id: str = "sim-client", client_secret: str = "sim-secret",
                 clock: Callable[[], float] | None = None):
        # `clock` (epoch seconds) drives arrival times, token expiry, the activity lifecycle and the
        # rate and quota windows, e.g. a virtual clock; by default the wall clock (windows: monotonic).
        self._clock = clock or time.time
        self._window_clock = clock or time.monotonic
        self.rate_limit_per_second = rate_limit_per_second
        self.daily_quota = daily_quota
        self.reads_to_finish = reads_to_finish
        self.seconds_to_finish = seconds_to_finish
        self.latency = latency
        self.rotating_refresh_tokens = rotating_refresh_tokens
        self.access_token_ttl = access_token_ttl
        self.fault_rate = fault_rate
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_rate_limit_per_second: float | None = 1.0  # set None to disable in tests
        self.slow_response_seconds = 2.0  # duration of the random "slow" fault
        # observations
        self.calls: list[Call] = []
        self.malformed: list[str] = []
        self.token_refreshes = 0
        self.invalid_grants = 0
        self.issued_secrets: list[str] = []  # every token and refresh token handed out, to scan logs for leaks
        # state
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._fault_rng = random.Random(seed)
        self._foreign_rng = random.Random(seed + 1)
        self._records: dict[str, dict] = {}  # every activity (tagging and foreign), oldest first
        self._seq = 0
        self._access_tokens: dict[str, float] = {}  # token -> epoch expiry
        self._refresh_tokens: set[str] = set()
        self._faults: list[_Fault] = []
        self._outcomes: dict[str, str] = {}
        self._api_window: deque[float] = deque()
        self._token_window: deque[float] = deque()
        self._quota_used = 0
        self._quota_exhausted = False
        self._quota_day = datetime.fromtimestamp(self._clock(), timezone.utc).date()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.token_url = ""

    # ----- lifecycle -------------------------------------------------------------------
    def start(self, port: int = 0) -> ConstantContactSimulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.simulator = self
        root = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.base_url, self.token_url = root + "/v3", root + TOKEN_PATH
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="cc-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ConstantContactSimulator:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----- test controls ---------------------------------------------------------------
    def issue_tokens(self) -> dict:
        """A fresh token secret (contracts.md section 3) that is valid now."""
        with self._lock:
            access, expires_at = self._new_access_token()
            refresh = secrets.token_urlsafe(32)
            self._refresh_tokens.add(refresh)
            self.issued_secrets.append(refresh)
        return {"access_token": access, "refresh_token": refresh, "client_id": self.client_id,
                "client_secret": self.client_secret, "expires_at": int(expires_at)}

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access_tokens.clear()

    def fail_next(self, method: str, path_prefix: str, status: int, body: Any = None, count: int = 1,
                  delay: float = 0.0, drop: bool = False) -> None:
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_prefix, status, body, count, delay, drop))

    def set_outcome(self, tag_id: str, state: str) -> None:
        if state not in TERMINAL_STATES:
            raise ValueError(f"outcome must be one of {TERMINAL_STATES}")
        with self._lock:
            self._outcomes[tag_id] = state

    def forget_activity(self, activity_id: str) -> None:
        with self._lock:
            self._records[activity_id]["forgotten"] = True

    def exhaust_quota(self) -> None:
        with self._lock:
            self._quota_exhausted = True

    def renew_quota(self) -> None:
        """The next UTC day: the daily quota is whole again."""
        with self._lock:
            self._quota_exhausted = False
            self._quota_used = 0

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
                rec.update(state="completed", percent_done=100, status=status, activity_errors=errors,
                           started_at=stamp, completed_at=stamp)
                if kind == "export":
                    rec["_links"]["results"] = {"href": f"/v3/contact_exports/{rec['activity_id']}"}

    # ----- observations ----------------------------------------------------------------
    @property
    def activities(self) -> dict[str, dict]:
        """Snapshot of the tagging activities created through the API, by activity_id."""
        with self._lock:
            for rec in self._records.values():
                self._advance(rec, read=False)
            return {aid: copy.deepcopy(rec) for aid, rec in self._records.items() if rec["kind"] == "tagging"}

    def count(self, method: str | None = None, path_prefix: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for c in self.calls
                       if (method is None or c.method == method.upper())
                       and (path_prefix is None or c.path.startswith(path_prefix))
                       and (status is None or c.status == status))

    def reset_counters(self) -> None:
        """Clear calls, token counters, quota usage and rate windows (not `malformed`, not activities)."""
        with self._lock:
            self.calls.clear()
            self.token_refreshes = self.invalid_grants = self._quota_used = 0
            self._quota_exhausted = False
            self._api_window.clear()
            self._token_window.clear()

    # ----- request pipeline ------------------------------------------------------------
    def _dispatch(self, method: str, target: str, headers: Any, raw: bytes) -> Response | None:
        """Answer one request (None: drop the connection) and record it in `calls`."""
        arrived = self._clock()
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        if self.latency:
            self._stopping.wait(self.latency)
        fault = self._take_fault(method, url.path)
        if fault is not None:
            self._stopping.wait(fault.delay)
            result = None if fault.drop else (fault.status, fault.body if fault.body is not None
                                              else _default_fault_body(url.path, fault.status))
        else:
            result = self._route(method, url.path, query, headers, raw)
        flat_query = {k: v[0] if len(v) == 1 else v for k, v in query.items()}
        call = Call(method, url.path, flat_query, result[0] if result else 0,
                    _recorded_body(url.path, raw), arrived)
        with self._lock:
            self.calls.append(call)
        return result

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and path.startswith(fault.path_prefix):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _route(self, method: str, path: str, query: dict, headers: Any, raw: bytes) -> Response:
        if path == TOKEN_PATH and method == "POST":
            return self._token(headers, raw)
        activity_id = path[len(ACTIVITIES) + 1:] if path.startswith(ACTIVITIES + "/") else ""
        if method == "POST" and path == TAGGINGS_REMOVE:
            handler = partial(self._create, query, headers, raw)
        elif method == "GET" and path == ACTIVITIES:
            handler = partial(self._list, query)
        elif method == "GET" and ID_PATTERN.fullmatch(activity_id):
            handler = partial(self._get, activity_id, query)
        else:
            self._malformed(method, path, "no such endpoint or method")
            return 404, _errors("not_found", f"No route for {method} {path}")
        return self._gate(method, path, headers) or handler()

    def _gate(self, method: str, path: str, headers: Any) -> Response | None:
        """Authentication, daily quota, rate limit and random faults; None lets the request through."""
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            self._malformed(method, path, "missing 'Authorization: Bearer <token>' header")
            return 401, UNAUTHORIZED
        with self._lock:
            if self._access_tokens.get(auth[len("Bearer "):], 0) <= self._clock():
                return 401, UNAUTHORIZED
            today = datetime.fromtimestamp(self._clock(), timezone.utc).date()
            if today != self._quota_day:
                self._quota_day, self._quota_used, self._quota_exhausted = today, 0, False
            self._quota_used += 1
            if self._quota_exhausted or (self.daily_quota is not None and self._quota_used > self.daily_quota):
                return 429, QUOTA_EXCEEDED
            if self.rate_limit_per_second and not _admit(self._api_window, self.rate_limit_per_second,
                                                         self._window_clock()):
                return 429, THROTTLED
            fault = None
            if self.fault_rate > 0 and self._fault_rng.random() < self.fault_rate:
                fault = self._fault_rng.choice((500, 503, 429, "slow"))
        if fault == "slow":
            self._stopping.wait(self.slow_response_seconds)  # then answer normally
        elif fault == 429:
            return 429, THROTTLED
        elif fault is not None:
            return fault, _errors("server_error", f"Simulated fault {fault}")
        return None

    def _malformed(self, method: str, path: str, reason: str) -> None:
        with self._lock:
            self.malformed.append(f"{method} {path}: {reason}")

    def _bad_request(self, method: str, path: str, problems: list[str]) -> Response:
        self._malformed(method, path, "; ".join(problems))
        return 400, _errors("contacts.api.validation.error", *problems)

    # ----- endpoints -------------------------------------------------------------------
    def _create(self, query: dict, headers: Any, raw: bytes) -> Response:
        problems = ["query parameters are not accepted"] if query else []
        content_type = headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            problems.append(f"Content-Type must be application/json, got {content_type!r}")
        else:
            try:
                body = _strict_json(raw)
            except ValueError as error:
                problems.append(f"body is not valid JSON ({error})")
            else:
                problems += validate_tagging_body(body)
        if problems:
            return self._bad_request("POST", TAGGINGS_REMOVE, problems)
        with self._lock:
            rec = self._new_record(str(uuid.uuid4()), "tagging", body, self._clock())
            rec["total"] = _item_count(body)
            return 201, self._view(rec)

    def _get(self, activity_id: str, query: dict) -> Response:
        if query:
            return self._bad_request("GET", f"{ACTIVITIES}/{activity_id}", ["query parameters are not accepted"])
        with self._lock:
            rec = self._records.get(activity_id)
            if rec is None or rec["forgotten"]:
                return 404, _errors("not_found", f"Activity {activity_id} not found")
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
        before = _decode_cursor(query["next"][0]) if "next" in query else None
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
                page.append(self._view(rec))
                last_seq = rec["seq"]
        body: dict = {"activities": page}
        if more:
            params = {"limit": limit, **({"state": state} if state else {}), "next": _encode_cursor(last_seq)}
            body["_links"] = {"next": {"href": f"{ACTIVITIES}?{urlencode(params)}"}}
        return 200, body

    def _token(self, headers: Any, raw: bytes) -> Response:
        with self._lock:
            if self.token_rate_limit_per_second and not _admit(self._token_window, self.token_rate_limit_per_second,
                                                               self._window_clock()):
                return 429, {"error": "too_many_requests", "error_description": "Too many token requests"}
        content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        problems = [] if content_type == "application/x-www-form-urlencoded" else ["Content-Type must be form-encoded"]
        problems += [f"form field {k!r} repeated" for k, v in form.items() if len(v) > 1]
        if form.get("grant_type") != ["refresh_token"]:
            problems.append("grant_type must be refresh_token")
        auth = headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            self._malformed("POST", TOKEN_PATH, "missing 'Authorization: Basic' client credentials")
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        try:
            client_id, _, client_secret = base64.b64decode(auth[len("Basic "):], validate=True).decode().partition(":")
        except ValueError:
            client_id = client_secret = ""
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        if problems:
            self._malformed("POST", TOKEN_PATH, "; ".join(problems))
            return 400, {"error": "invalid_request", "error_description": "; ".join(problems)}
        refresh = form.get("refresh_token", [""])[0]
        with self._lock:
            if refresh not in self._refresh_tokens:
                self.invalid_grants += 1
                return 400, {"error": "invalid_grant", "error_description": "The refresh token is invalid or expired."}
            if self.rotating_refresh_tokens:
                self._refresh_tokens.discard(refresh)
                refresh = secrets.token_urlsafe(32)
                self._refresh_tokens.add(refresh)
                self.issued_secrets.append(refresh)
            access, _ = self._new_access_token()
            self.token_refreshes += 1
        ttl = ACCESS_TOKEN_LIFETIME if self.access_token_ttl is None else self.access_token_ttl
        return 200, {"token_type": "Bearer", "expires_in": ttl,
                     "access_token": access, "scope": "contact_data offline_access",
                     "refresh_token": refresh, "id_token": "x"}

    # ----- activity state --------------------------------------------------------------
    def _new_access_token(self) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        self.issued_secrets.append(token)
        ttl = ACCESS_TOKEN_LIFETIME if self.access_token_ttl is None else self.access_token_ttl
        expires_at = self._clock() + ttl
        self._access_tokens[token] = expires_at
        return token, expires_at

    def _new_record(self, activity_id: str, kind: str, body: dict | None, now: float) -> dict:
        self._seq += 1
        stamp = _iso(now)
        rec = {"activity_id": activity_id, "kind": kind, "seq": self._seq, "body": body, "created": now,
               "created_at": stamp, "updated_at": stamp, "started_at": None, "completed_at": None,
               "state": "initialized", "percent_done": 0, "activity_errors": [], "status": {},
               "_links": {"self": {"href": f"{ACTIVITIES}/{activity_id}"}}, "reads": 0, "forgotten": False}
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
        now = _iso(self._clock())
        rec["started_at"] = rec["started_at"] or now
        rec["updated_at"] = now
        total = rec["total"]
        if progress < 1:
            rec.update(state="processing", percent_done=int(progress * 100),
                       status={"items_total_count": total, "items_completed_count": int(total * progress)})
            return
        outcome = next((self._outcomes[t] for t in rec["body"]["tag_ids"] if t in self._outcomes), "completed")
        done = total if outcome == "completed" else total // 2
        errors = {"failed": [f"Tags could not be removed from {total - done} contact(s)"],
                  "timed_out": ["The activity timed out before it finished"]}.get(outcome, [])
        rec.update(state=outcome, percent_done=100, completed_at=now, activity_errors=errors,
                   status={"items_total_count": total, "items_completed_count": done})

    @staticmethod
    def _view(rec: dict) -> dict:
        """The activity as the API shows it."""
        keys = ("activity_id", "state", "created_at", "updated_at", "started_at", "completed_at",
                "percent_done", "activity_errors", "status", "_links")
        return copy.deepcopy({k: rec[k] for k in keys if rec[k] is not None})


def _admit(window: deque[float], rate: float, now: float) -> bool:
    """Sliding-window limiter: at most max(1, int(rate)) admitted requests per max(1, int(rate))/rate s."""
    capacity = max(1, int(rate))
    span = capacity / rate
    while window and window[0] <= now - span:
        window.popleft()
    if len(window) >= capacity:
        return False
    window.append(now)
    return True


def _default_fault_body(path: str, status: int) -> Any:
    if path.startswith("/oauth2"):
        error = {400: "invalid_grant", 401: "invalid_client", 429: "too_many_requests"}.get(status, "server_error")
        return {"error": error, "error_description": "Forced by the simulator"}
    if status == 429:
        return THROTTLED
    if status == 401:
        return UNAUTHORIZED
    return _errors({404: "not_found", 503: "service_unavailable"}.get(status, "server_error"), f"Forced HTTP {status}")


def _recorded_body(path: str, raw: bytes) -> Any:
    """The request body as kept in `calls`: never a token."""
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if path == TOKEN_PATH:
        form = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(text, keep_blank_values=True).items()}
        return {k: ("<redacted>" if "token" in k or "secret" in k else v) for k, v in form.items()}
    try:
        return json.loads(text)
    except ValueError:
        return text


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator: ConstantContactSimulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are expected; never print request data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between headers and body
    server: _Server

    def _serve(self) -> None:
        sim = self.server.simulator
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        result = None if sim._stopping.is_set() else sim._dispatch(self.command, self.path, self.headers, raw)
        if result is None:
            self.close_connection = True  # the socket closes without an answer
            return
        status, body = result
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines and headers may carry tokens: log nothing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--rate-limit", type=float, default=4.0, help="API requests per second (0: unlimited)")
    parser.add_argument("--daily-quota", type=int, default=10_000, help="API requests per day (0: unlimited)")
    parser.add_argument("--reads-to-finish", type=int, default=2)
    parser.add_argument("--seconds-to-finish", type=float, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-lived-refresh-tokens", action="store_true")
    parser.add_argument("--foreign-activities", type=int, default=0)
    args = parser.parse_args(argv)
    sim = ConstantContactSimulator(
        rate_limit_per_second=args.rate_limit or None, daily_quota=args.daily_quota or None,
        reads_to_finish=args.reads_to_finish, seconds_to_finish=args.seconds_to_finish, latency=args.latency,
        rotating_refresh_tokens=not args.long_lived_refresh_tokens, fault_rate=args.fault_rate, seed=args.seed,
    ).start(port=args.port)
    sim.add_foreign_activities(args.foreign_activities)
    print(json.dumps({"base_url": sim.base_url, "token_url": sim.token_url, "token_secret": sim.issue_tokens()}),
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
