"""OAuth2 tokens for Constant Contact: read from Secrets Manager, refreshed one at a time, written back first.

Refresh tokens may be rotating (each works once), so across every instance only one refresh
runs at a time (a lease in the activity table), the new tokens are stored in the secret
before the new access token is used, and the others wait and re-read the secret.
``invalid_grant`` stops with an :class:`AuthenticationError` instead of a retry storm.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import requests

from untag.constant_contact import AuthenticationError, TransientApiError
from untag.observability import count, count_call, logger

EXPIRY_MARGIN_SECONDS = 300  # refresh this long before expires_at, or a tenth of a shorter token lifetime
LOCK_NAME = "token-refresh"
WAIT_FOR_OTHER_REFRESH_SECONDS = 20
TOKEN_ENDPOINT_INTERVAL_SECONDS = 1.0  # the token endpoint allows 1 request per second
TOKEN_TIMEOUTS = (3.05, 5.0)  # connect, read: one token call takes at most 8.05 s
SECRET_WRITE_RETRIES = (0.2, 1.0)  # pauses after each failed write of refreshed tokens (3 writes in all)
# Each Secrets Manager call is bounded by its client's configuration (untag.services: 1 s connect,
# 3 s read, no botocore retries), so a whole refresh has a known longest duration.
SECRET_CALL_SECONDS = 4.0


def longest_refresh_seconds(timeouts: tuple[float, float] = TOKEN_TIMEOUTS) -> float:
    """The longest a refresh can take once it holds the lock: a re-read of the secret, the token endpoint's
    pacing, two token calls with the 429 pause between them, and every write of the result with its pauses."""
    token_call = timeouts[0] + timeouts[1]
    return (
        SECRET_CALL_SECONDS
        + TOKEN_ENDPOINT_INTERVAL_SECONDS
        + 2 * token_call
        + 2 * TOKEN_ENDPOINT_INTERVAL_SECONDS
        + (len(SECRET_WRITE_RETRIES) + 1) * SECRET_CALL_SECONDS
        + sum(SECRET_WRITE_RETRIES)
    )


def lock_lease_seconds(timeouts: tuple[float, float] = TOKEN_TIMEOUTS) -> float:
    """The refresh lock outlasts the longest refresh, with a margin: a second instance can never take it
    while the first may still spend the refresh token or write its result."""
    return longest_refresh_seconds(timeouts) * 1.25 + 2.0


class SecretStore(Protocol):
    def read(self) -> dict[str, Any]: ...

    def write(self, value: dict[str, Any]) -> None: ...


class Lock(Protocol):
    def acquire(self, name: str, holder: str, lease_seconds: float) -> float | None:
        """Take the lease; return when the lock was last released (epoch) or None when held by another."""

    def release(self, name: str, holder: str) -> None: ...


class SecretsManagerSecret:
    """The token secret, in the contract's JSON format."""

    def __init__(self, client_factory: Callable[[], Any], secret_id: str):
        self._client_factory = client_factory
        self._secret_id = secret_id

    def read(self) -> dict[str, Any]:
        answer = self._client_factory().get_secret_value(SecretId=self._secret_id)
        try:
            value = json.loads(answer["SecretString"])
        except (KeyError, ValueError):
            raise AuthenticationError("the token secret is not the JSON docs/contracts.md documents") from None
        if not isinstance(value, dict) or not isinstance(value.get("access_token"), str):
            raise AuthenticationError("the token secret has no access_token")
        return value

    def write(self, value: dict[str, Any]) -> None:
        self._client_factory().put_secret_value(SecretId=self._secret_id, SecretString=json.dumps(value))


class TokenProvider:
    def __init__(
        self,
        secret: SecretStore,
        token_url: str,
        lock: Lock,
        *,
        session: requests.Session | None = None,
        timeouts: tuple[float, float] = TOKEN_TIMEOUTS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._secret = secret
        self._token_url = token_url
        self._lock = lock
        self._session = session or requests.Session()
        self._timeouts = timeouts
        self._clock = clock
        self._sleep = sleep
        self._tokens: dict[str, Any] | None = None
        self._holder = uuid.uuid4().hex
        # The Lambda time left to this invocation (set per invocation, untag.services.Services.begin):
        # a refresh never starts unless it can end, its result stored, before the Lambda does.
        self.time_left: Callable[[], float] = lambda: float("inf")

    def access_token(self) -> str:
        if self._tokens is None:
            self._tokens = self._secret.read()
        if self._expiring(self._tokens) and self._tokens.get("refresh_token"):
            return self._refresh(self._tokens["access_token"])
        return self._tokens["access_token"]

    def after_unauthorized(self, rejected_token: str) -> str:
        """Constant Contact refused ``rejected_token``: use a newer one if another instance made it, else refresh."""
        self._tokens = self._secret.read()
        if self._tokens["access_token"] != rejected_token and not self._expiring(self._tokens):
            return self._tokens["access_token"]
        return self._refresh(rejected_token)

    def _expiring(self, tokens: dict[str, Any]) -> bool:
        expires_at = tokens.get("expires_at")
        if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool):
            return False
        lifetime = tokens.get("expires_in")
        margin = EXPIRY_MARGIN_SECONDS
        if isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool):
            margin = min(margin, lifetime / 10)
        return self._clock() >= expires_at - margin

    def _refresh(self, stale_token: str) -> str:
        longest = longest_refresh_seconds(self._timeouts)
        if self.time_left() < longest:
            count("TokenRefreshPostponed")
            raise TransientApiError(f"too little Lambda time left to refresh the token safely (needs {longest:.0f} s)")
        waited_until = self._clock() + WAIT_FOR_OTHER_REFRESH_SECONDS
        while True:
            released_at = self._lock.acquire(LOCK_NAME, self._holder, lock_lease_seconds(self._timeouts))
            if released_at is not None:
                break
            # Another instance is refreshing: wait, then use what it stored.
            self._sleep(0.5)
            self._tokens = self._secret.read()
            if self._tokens["access_token"] != stale_token and not self._expiring(self._tokens):
                return self._tokens["access_token"]
            if self._clock() > waited_until:
                raise TransientApiError("another instance is refreshing the Constant Contact token")
        try:
            # Re-read under the lock: the refresh token in hand may already have been used.
            self._tokens = self._secret.read()
            if self._tokens["access_token"] != stale_token and not self._expiring(self._tokens):
                return self._tokens["access_token"]
            pause = released_at + TOKEN_ENDPOINT_INTERVAL_SECONDS - self._clock()
            if pause > 0:
                self._sleep(pause)
            self._tokens = self._exchange(self._tokens)
            return self._tokens["access_token"]
        finally:
            self._lock.release(LOCK_NAME, self._holder)

    def _exchange(self, tokens: dict[str, Any]) -> dict[str, Any]:
        refresh_token = tokens.get("refresh_token")
        client_id, client_secret = tokens.get("client_id"), tokens.get("client_secret")
        if not (refresh_token and client_id and client_secret):
            count("TokenRefreshFailed")
            raise AuthenticationError(
                "the access token is expired or refused and the secret lacks refresh_token/client_id/client_secret"
            )
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        for attempt in range(2):
            try:
                response = self._session.post(
                    self._token_url,
                    data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                    headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                    timeout=self._timeouts,
                )
            except requests.RequestException as error:
                count_call("token", "connection")
                raise TransientApiError(f"token endpoint unreachable: {type(error).__name__}") from None
            count_call("token", f"{response.status_code // 100}xx")
            if response.status_code == 429 and attempt == 0:
                self._sleep(TOKEN_ENDPOINT_INTERVAL_SECONDS * 2)
                continue
            break
        answer = _json(response)
        if response.status_code != 200 or not isinstance(answer.get("access_token"), str):
            error = str(answer.get("error") or response.status_code)[:60]
            count("TokenRefreshFailed")
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientApiError(f"token refresh failed: {error}", status=response.status_code)
            logger.error("Constant Contact refused the token refresh; re-authorise the app", extra={"error": error})
            raise AuthenticationError(
                f"token refresh refused ({error}): re-authorise the app and put new tokens in the secret",
                status=response.status_code,
                key=error,
            )
        renewed = dict(tokens)
        renewed["access_token"] = answer["access_token"]
        renewed["refresh_token"] = answer.get("refresh_token") or refresh_token
        if isinstance(answer.get("expires_in"), (int, float)):
            renewed["expires_at"] = int(self._clock() + answer["expires_in"])
            renewed["expires_in"] = answer["expires_in"]  # lets every instance refresh short-lived tokens in time
        # Store first: with rotating refresh tokens the old one is already void.
        self._store(renewed)
        count("TokenRefreshed")
        logger.info("Constant Contact access token refreshed")
        return renewed

    def _store(self, renewed: dict[str, Any]) -> None:
        """Write refreshed tokens to the secret, trying hard: losing a rotated refresh token locks the app out."""
        for pause in (*SECRET_WRITE_RETRIES, None):
            try:
                self._secret.write(renewed)
                return
            except Exception as error:  # noqa: BLE001 - any failure: try again, then say so loudly
                failure = type(error).__name__
            if pause is not None:
                self._sleep(pause)
        count("TokenRefreshFailed")
        logger.critical(
            "refreshed Constant Contact tokens could not be written to the secret; "
            "this instance keeps using them, others will need a re-authorisation",
            extra={"error": failure},
        )


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
