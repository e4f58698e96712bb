"""The simulator itself: its state and lifecycle, the controls tests use, what it observed, and the gate every
API request passes (authentication, daily quota, rate limit, injected faults) before its endpoint, over HTTP.

The endpoints are mixed in by concern: ``ActivityApi`` (devkit.simulator.activities), ``ContactApi``
(devkit.simulator.contacts, with the contacts and tags and their controls) and ``TokenApi``
(devkit.simulator.oauth: authorization and token); the API's rules are in devkit.simulator.contract.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devkit.simulator.activities import ActivityApi
from devkit.simulator.contacts import ContactApi
from devkit.simulator.contract import (
    ACTIVITIES,
    AUTHORIZE_PATH,
    ID_PATTERN,
    QUOTA_EXCEEDED,
    TAGGINGS_REMOVE,
    TERMINAL_STATES,
    THROTTLED,
    TOKEN_PATH,
    UNAUTHORIZED,
    Response,
    admit,
    api_errors,
    default_fault_body,
    recorded_body,
)
from devkit.simulator.oauth import TokenApi


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
    carried_out: bool = False  # the request is carried out first; only its answer is lost or replaced


class ConstantContactSimulator(ActivityApi, ContactApi, TokenApi):
    """In-process fake of the Constant Contact V3 API. See the module docstring."""

    def __init__(
        self,
        *,
        rate_limit_per_second: float | None = 4.0,
        daily_quota: int | None = 10_000,
        reads_to_finish: int = 2,
        seconds_to_finish: float | None = None,
        latency: float = 0.0,
        rotating_refresh_tokens: bool = True,
        access_token_ttl: float | None = None,
        fault_rate: float = 0.0,
        seed: int = 0,
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",
        clock: Callable[[], float] | None = None,
    ):
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
        self.refused_contacts: set[str] = set()  # a create whose source holds one of these answers 400
        self.token_gate: threading.Event | None = None  # set: the token endpoint answers only once it is open
        # observations
        self.calls: list[Call] = []
        self.malformed: list[str] = []
        self.token_refreshes = self.code_exchanges = self.invalid_grants = 0
        self.authorizations: list[dict] = []  # each authorization approved: client_id, redirect_uri, scope
        self.issued_secrets: list[str] = []  # every token and refresh token handed out, to scan logs for leaks
        # state
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._fault_rng = random.Random(seed)
        self._foreign_rng = random.Random(seed + 1)
        self._records: dict[str, dict] = {}  # every activity (tagging and foreign), oldest first
        self._init_contacts(seed)  # tags and contacts (devkit.simulator.contact_state)
        self._seq = 0
        self._access_tokens: dict[str, float] = {}  # token -> epoch expiry
        self._refresh_tokens: set[str] = set()
        self._auth_codes: dict[str, dict] = {}  # one-time authorization code -> its grant and code challenge
        self._faults: list[_Fault] = []
        self._outcomes: dict[str, str] = {}
        self._api_window: deque[float] = deque()
        self._token_window: deque[float] = deque()
        self._quota_used = 0
        self._quota_exhausted = False
        self._quota_day = datetime.fromtimestamp(self._clock(), UTC).date()
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
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="cc-simulator", daemon=True
        )
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
    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int,
        body: Any = None,
        count: int = 1,
        delay: float = 0.0,
        drop: bool = False,
        carried_out: bool = False,
    ) -> None:
        """Answer the next ``count`` matching requests with a fault; with ``carried_out`` the request is done
        first (an activity created) and only the answer is the fault (a 5xx, a drop, a late answer)."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_prefix, status, body, count, delay, drop, carried_out))

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
            return sum(
                1
                for c in self.calls
                if (method is None or c.method == method.upper())
                and (path_prefix is None or c.path.startswith(path_prefix))
                and (status is None or c.status == status)
            )

    def reset_counters(self) -> None:
        """Clear calls, token counters, quota usage and rate windows (not `malformed`, not activities)."""
        with self._lock:
            self.calls.clear()
            self.token_refreshes = self.code_exchanges = self.invalid_grants = self._quota_used = 0
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
            if fault.carried_out:
                self._route(method, url.path, query, headers, raw)
            self._stopping.wait(fault.delay)
            result = (
                None
                if fault.drop
                else (
                    fault.status,
                    fault.body if fault.body is not None else default_fault_body(url.path, fault.status),
                )
            )
        else:
            result = self._route(method, url.path, query, headers, raw)
        flat_query = {k: v[0] if len(v) == 1 else v for k, v in query.items()}
        call = Call(method, url.path, flat_query, result[0] if result else 0, recorded_body(url.path, raw), arrived)
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
        if path == AUTHORIZE_PATH and method == "GET":
            return self._authorize(query)
        activity_id = path[len(ACTIVITIES) + 1 :] if path.startswith(ACTIVITIES + "/") else ""
        if method == "POST" and path == TAGGINGS_REMOVE:
            handler = partial(self._create, query, headers, raw)
        elif method == "GET" and path == ACTIVITIES:
            handler = partial(self._list, query)
        elif method == "GET" and ID_PATTERN.fullmatch(activity_id):
            handler = partial(self._get, activity_id, query)
        elif contact_endpoint := self._contact_endpoint(method, path):
            handler = partial(contact_endpoint, query)
        else:
            self._malformed(method, path, "no such endpoint or method")
            return 404, api_errors("not_found", f"No route for {method} {path}")
        return self._gate(method, path, headers) or handler()

    def _gate(self, method: str, path: str, headers: Any) -> Response | None:
        """Authentication, daily quota, rate limit and random faults; None lets the request through."""
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            self._malformed(method, path, "missing 'Authorization: Bearer <token>' header")
            return 401, UNAUTHORIZED
        with self._lock:
            if self._access_tokens.get(auth[len("Bearer ") :], 0) <= self._clock():
                return 401, UNAUTHORIZED
            today = datetime.fromtimestamp(self._clock(), UTC).date()
            if today != self._quota_day:
                self._quota_day, self._quota_used, self._quota_exhausted = today, 0, False
            self._quota_used += 1
            if self._quota_exhausted or (self.daily_quota is not None and self._quota_used > self.daily_quota):
                return 429, QUOTA_EXCEEDED
            if self.rate_limit_per_second and not admit(
                self._api_window, self.rate_limit_per_second, self._window_clock()
            ):
                return 429, THROTTLED
            fault = None
            if self.fault_rate > 0 and self._fault_rng.random() < self.fault_rate:
                fault = self._fault_rng.choice((500, 503, 429, "slow"))
        if fault == "slow":
            self._stopping.wait(self.slow_response_seconds)  # then answer normally
        elif fault == 429:
            return 429, THROTTLED
        elif fault is not None:
            return fault, api_errors("server_error", f"Simulated fault {fault}")
        return None

    def _malformed(self, method: str, path: str, reason: str) -> None:
        with self._lock:
            self.malformed.append(f"{method} {path}: {reason}")

    def _bad_request(self, method: str, path: str, problems: list[str]) -> Response:
        self._malformed(method, path, "; ".join(problems))
        return 400, api_errors("contacts.api.validation.error", *problems)


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
        status, body, *headers = result
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers[0].items() if headers else ():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines and headers may carry tokens: log nothing
