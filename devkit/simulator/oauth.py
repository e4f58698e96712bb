"""The simulator's OAuth2 token endpoint: the refresh-token grant, rotating refresh tokens, access tokens.

Mixed into ``ConstantContactSimulator``, whose state it uses: ``_lock``, ``_access_tokens``,
``_refresh_tokens``, ``_token_window``, the client credentials and the token counters.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any
from urllib.parse import parse_qs

from devkit.simulator.contract import ACCESS_TOKEN_LIFETIME, TOKEN_PATH, Response, admit


class TokenApi:
    """``POST /oauth2/default/v1/token`` with ``grant_type=refresh_token`` and HTTP Basic client credentials."""

    _lock: Any
    _access_tokens: dict[str, float]
    _refresh_tokens: set[str]
    _token_window: Any
    client_id: str
    client_secret: str
    rotating_refresh_tokens: bool
    access_token_ttl: float | None
    token_rate_limit_per_second: float | None
    token_gate: Any
    token_refreshes: int
    invalid_grants: int
    issued_secrets: list[str]

    def _token(self, headers: Any, raw: bytes) -> Response:
        gate = self.token_gate
        if gate is not None:  # a slow token endpoint: the refresh is in flight until the test opens the gate
            gate.wait(30)
        with self._lock:
            if self.token_rate_limit_per_second and not admit(
                self._token_window, self.token_rate_limit_per_second, self._window_clock()
            ):
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
            client_id, _, client_secret = base64.b64decode(auth[len("Basic ") :], validate=True).decode().partition(":")
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
        return 200, {
            "token_type": "Bearer",
            "expires_in": ttl,
            "access_token": access,
            "scope": "contact_data offline_access",
            "refresh_token": refresh,
            "id_token": "x",
        }

    def _new_access_token(self) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        self.issued_secrets.append(token)
        ttl = ACCESS_TOKEN_LIFETIME if self.access_token_ttl is None else self.access_token_ttl
        expires_at = self._clock() + ttl
        self._access_tokens[token] = expires_at
        return token, expires_at
