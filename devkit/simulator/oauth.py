"""The simulator's OAuth2 endpoints: the authorization endpoint (the authorization-code flow with PKCE, approved at
once) and the token endpoint (the ``authorization_code`` and ``refresh_token`` grants, rotating refresh tokens,
access tokens).

Mixed into ``ConstantContactSimulator``, whose state it uses: ``_lock``, ``_access_tokens``, ``_refresh_tokens``,
``_auth_codes``, ``_token_window``, the client credentials and the token counters and records.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from devkit.simulator.contract import ACCESS_TOKEN_LIFETIME, AUTHORIZE_PATH, TOKEN_PATH, Response, admit

AUTH_CODE_LIFETIME = 300.0  # seconds: Constant Contact's authorization codes last 5 minutes and work once
SCOPES = frozenset({"account_read", "account_update", "contact_data", "campaign_data", "offline_access"})
CODE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 section 4.1
CODE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest, unpadded
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
INVALID_CLIENT = {"error": "invalid_client", "error_description": "Client authentication failed"}


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of a code verifier: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def is_loopback_redirect(uri: str) -> bool:
    """An ``http`` redirect URI on this machine's loopback interface (the simulator registers no others)."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and not parts.fragment


class TokenApi:
    """``GET /oauth2/default/v1/authorize`` and ``POST /oauth2/default/v1/token``."""

    _lock: Any
    _access_tokens: dict[str, float]
    _refresh_tokens: set[str]
    _auth_codes: dict[str, dict]
    _token_window: Any
    client_id: str
    client_secret: str
    rotating_refresh_tokens: bool
    access_token_ttl: float | None
    token_rate_limit_per_second: float | None
    token_gate: Any
    token_refreshes: int
    code_exchanges: int
    invalid_grants: int
    issued_secrets: list[str]
    authorizations: list[dict]
    token_url: str

    # ----- test controls -----------------------------------------------------------------
    @property
    def authorize_url(self) -> str:
        return self.token_url.removesuffix(TOKEN_PATH) + AUTHORIZE_PATH if self.token_url else ""

    def issue_tokens(self) -> dict:
        """A fresh token secret (contracts.md section 3) that is valid now."""
        with self._lock:
            access, expires_at = self._new_access_token()
            refresh = self._new_refresh_token()
        return {
            "access_token": access,
            "refresh_token": refresh,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "expires_at": int(expires_at),
        }

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access_tokens.clear()

    # ----- the authorization endpoint ----------------------------------------------------
    def _authorize(self, query: dict[str, list[str]]) -> Response:
        """The user approves at once: a 302 to the redirect URI with a one-time code bound to the client, the
        redirect URI and the code challenge. Errors go back to the redirect URI when it is a valid one."""
        params = {key: values[0] for key, values in query.items()}
        repeated = [f"parameter {key!r} repeated" for key, values in query.items() if len(values) > 1]
        redirect_uri = params.get("redirect_uri", "")
        if params.get("client_id") != self.client_id:  # nowhere safe to send the user: answer here
            return 400, {"error": "invalid_client", "error_description": "Unknown client_id"}
        if repeated or not is_loopback_redirect(redirect_uri):
            problems = repeated or ["redirect_uri must be a loopback http URI (http://127.0.0.1:PORT/...)"]
            self._malformed("GET", AUTHORIZE_PATH, "; ".join(problems))
            return 400, {"error": "invalid_request", "error_description": "; ".join(problems)}
        state, scope = params.get("state", ""), params.get("scope", "")
        error = None
        if params.get("response_type") != "code":
            error = ("unsupported_response_type", "response_type must be code")
        elif not state:
            error = ("invalid_request", "state is required")
        elif not CODE_CHALLENGE.fullmatch(params.get("code_challenge", "")):
            error = ("invalid_request", "code_challenge is required: 43 base64url characters (S256)")
        elif params.get("code_challenge_method") != "S256":
            error = ("invalid_request", "code_challenge_method must be S256")
        elif not scope.split() or not set(scope.split()) <= SCOPES:
            error = ("invalid_scope", f"scope must be among {' '.join(sorted(SCOPES))}")
        if error is not None:
            self._malformed("GET", AUTHORIZE_PATH, error[1])
            answer = {"error": error[0], "error_description": error[1], **({"state": state} if state else {})}
            return 302, None, {"Location": _with_query(redirect_uri, answer)}
        code = secrets.token_urlsafe(32)
        grant = {"client_id": self.client_id, "redirect_uri": redirect_uri, "scope": " ".join(scope.split())}
        with self._lock:
            self._auth_codes[code] = {
                **grant,
                "code_challenge": params["code_challenge"],
                "expires_at": self._clock() + AUTH_CODE_LIFETIME,
            }
            self.issued_secrets.append(code)
            self.authorizations.append(grant)
        return 302, None, {"Location": _with_query(redirect_uri, {"code": code, "state": state})}

    # ----- the token endpoint ------------------------------------------------------------
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
        fields = {key: values[0] for key, values in form.items()}
        grant_type = fields.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            problems.append("grant_type must be refresh_token or authorization_code")
        client_id = self._client_of(headers, fields, public_allowed=grant_type == "authorization_code")
        if client_id is None:
            return 401, INVALID_CLIENT
        if problems:
            self._malformed("POST", TOKEN_PATH, "; ".join(problems))
            return 400, {"error": "invalid_request", "error_description": "; ".join(problems)}
        if grant_type == "authorization_code":
            return self._code_grant(client_id, fields)
        return self._refresh_grant(fields.get("refresh_token", ""))

    def _client_of(self, headers: Any, fields: dict[str, str], public_allowed: bool) -> str | None:
        """The authenticated client: HTTP Basic credentials, or (a public PKCE client exchanging a code) the
        ``client_id`` form field alone. None: authentication failed."""
        auth = headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            if public_allowed and "client_id" in fields:
                return fields["client_id"] if fields["client_id"] == self.client_id else None
            self._malformed("POST", TOKEN_PATH, "missing 'Authorization: Basic' client credentials")
            return None
        try:
            client_id, _, client_secret = base64.b64decode(auth[len("Basic ") :], validate=True).decode().partition(":")
        except ValueError:
            return None
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return None
        return client_id if fields.get("client_id", client_id) == client_id else None

    def _code_grant(self, client_id: str, fields: dict[str, str]) -> Response:
        problems = [f"{key} is required" for key in ("code", "redirect_uri", "code_verifier") if not fields.get(key)]
        verifier = fields.get("code_verifier", "")
        if verifier and not CODE_VERIFIER.fullmatch(verifier):
            problems.append("code_verifier must be 43 to 128 unreserved characters")
        if problems:
            self._malformed("POST", TOKEN_PATH, "; ".join(problems))
            return 400, {"error": "invalid_request", "error_description": "; ".join(problems)}
        with self._lock:
            grant = self._auth_codes.pop(fields["code"], None)  # one use, whatever comes of it
            if grant is None or grant["expires_at"] <= self._clock() or grant["client_id"] != client_id:
                refused = "The authorization code is invalid or has expired."
            elif grant["redirect_uri"] != fields["redirect_uri"]:
                refused = "The redirect_uri does not match the one of the authorization request."
            elif not hmac.compare_digest(grant["code_challenge"], s256(verifier)):
                refused = "PKCE verification failed."
            else:
                refused = ""
            if refused:
                self.invalid_grants += 1
                return 400, {"error": "invalid_grant", "error_description": refused}
            access, _ = self._new_access_token()
            refresh = self._new_refresh_token() if "offline_access" in grant["scope"].split() else None
            self.code_exchanges += 1
        return 200, self._token_answer(access, refresh, grant["scope"])

    def _refresh_grant(self, refresh: str) -> Response:
        with self._lock:
            if refresh not in self._refresh_tokens:
                self.invalid_grants += 1
                return 400, {"error": "invalid_grant", "error_description": "The refresh token is invalid or expired."}
            if self.rotating_refresh_tokens:
                self._refresh_tokens.discard(refresh)
                refresh = self._new_refresh_token()
            access, _ = self._new_access_token()
            self.token_refreshes += 1
        return 200, self._token_answer(access, refresh, "contact_data offline_access")

    def _token_answer(self, access: str, refresh: str | None, scope: str) -> dict:
        ttl = ACCESS_TOKEN_LIFETIME if self.access_token_ttl is None else self.access_token_ttl
        answer = {"token_type": "Bearer", "expires_in": ttl, "access_token": access, "scope": scope}
        return {**answer, **({"refresh_token": refresh} if refresh else {}), "id_token": "x"}

    def _new_access_token(self) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        self.issued_secrets.append(token)
        ttl = ACCESS_TOKEN_LIFETIME if self.access_token_ttl is None else self.access_token_ttl
        expires_at = self._clock() + ttl
        self._access_tokens[token] = expires_at
        return token, expires_at

    def _new_refresh_token(self) -> str:
        token = secrets.token_urlsafe(32)
        self._refresh_tokens.add(token)
        self.issued_secrets.append(token)
        return token


def _with_query(uri: str, params: dict[str, str]) -> str:
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{urlencode(params)}"
