"""The Constant Contact V3 client: the activity endpoints, and the tag and contact reads that resolve names,
over one pooled ``requests.Session``.

Maps every answer to the service's words: an :class:`ActivityStatus`, or one of the errors
below that say what the caller should do (give up, retry later, wait for the quota, fix the
tokens). Only canonical bodies are sent; tokens never appear in errors or logs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests

from untag.activity import ActivityStatus
from untag.observability import count, count_call, logger

REMOVE_TAGS_PATH = "/activities/contacts_taggings_remove"
PAGE_LIMIT = 500  # the largest page GET /activities, /contact_tags and /contacts serve
THROTTLE_BACKOFF_SECONDS = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Contact:
    """A contact as the directory needs it: its id, its e-mail address (normalised), whether it was deleted."""

    contact_id: str
    email: str
    deleted: bool = False


@dataclass(frozen=True)
class Tag:
    tag_id: str
    name: str


class ApiError(Exception):
    """Constant Contact did not do what was asked. ``status`` 0 means no HTTP answer."""

    def __init__(self, message: str, *, status: int = 0, key: str = ""):
        super().__init__(message)
        self.status = status
        self.key = key


class PermanentApiError(ApiError):
    """Asking again will not help (400, 403, 404 on create): the request fails."""


class TransientApiError(ApiError):
    """Try again later (5xx, timeouts, dropped connections, throttling that outlasted the back-off).

    ``maybe_done``: the request reached Constant Contact and may have been carried out (a read
    timeout, a dropped answer, a 5xx): for a create, an activity may exist that nobody follows.
    """

    def __init__(self, message: str, *, status: int = 0, key: str = "", maybe_done: bool = False):
        super().__init__(message, status=status, key=key)
        self.maybe_done = maybe_done


class QuotaExceeded(ApiError):
    """The daily request quota is used up: nothing succeeds until 00:00 UTC."""


class AuthenticationError(ApiError):
    """The tokens are not accepted even after a refresh; an operator must act."""


class TokenSource(Protocol):
    def access_token(self) -> str: ...

    def after_unauthorized(self, rejected_token: str) -> str: ...


class RateLimiter(Protocol):
    def acquire(self) -> None: ...


class Unlimited:
    def acquire(self) -> None:
        return None


class ConstantContactClient:
    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        rate_limiter: RateLimiter | None = None,
        timeouts: tuple[float, float] = (3.05, 6.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._limiter = rate_limiter or Unlimited()
        self._timeouts = timeouts
        self._session = session or requests.Session()
        self._sleep = sleep

    def create_tag_removal(self, body: dict[str, Any]) -> ActivityStatus:
        """POST /activities/contacts_taggings_remove with a canonical body."""
        answer = self._call("POST", self._base_url + REMOVE_TAGS_PATH, endpoint="create", json=body)
        return ActivityStatus.from_api(answer)

    def get_activity(self, activity_id: str) -> ActivityStatus | None:
        """GET /activities/{id}; None when Constant Contact no longer knows it (kept 10 days)."""
        url = f"{self._base_url}/activities/{activity_id}"
        try:
            answer = self._call("GET", url, endpoint="get")
        except PermanentApiError as error:
            if error.status == 404:
                return None
            raise
        return ActivityStatus.from_api(answer, activity_id)

    def list_activities(
        self, *, limit: int = 500, next_link: str | None = None
    ) -> tuple[list[ActivityStatus], str | None]:
        """One page of GET /activities (newest activities of the last 10 days) and the next page's link."""
        if next_link:
            answer = self._call("GET", self._resolve(next_link), endpoint="list")
        else:
            answer = self._call("GET", f"{self._base_url}/activities", endpoint="list", params={"limit": limit})
        activities = [ActivityStatus.from_api(item) for item in _items(answer, "activities") if item.get("activity_id")]
        return activities, _next_link(answer)

    def list_tags(self, *, next_link: str | None = None) -> tuple[list[Tag], str | None]:
        """One page of GET /contact_tags (500 a page) and the next page's link."""
        if next_link:
            answer = self._call("GET", self._resolve(next_link), endpoint="tags")
        else:
            answer = self._call("GET", f"{self._base_url}/contact_tags", endpoint="tags", params={"limit": PAGE_LIMIT})
        tags = [
            Tag(str(item["tag_id"]), item["name"])
            for item in _items(answer, "tags")
            if item.get("tag_id") and isinstance(item.get("name"), str)
        ]
        return tags, _next_link(answer)

    def list_contacts(
        self, *, updated_after: str | None = None, next_link: str | None = None
    ) -> tuple[list[Contact], str | None]:
        """One page of GET /contacts?status=all (deleted ones included), changed after ``updated_after``."""
        if next_link:
            answer = self._call("GET", self._resolve(next_link), endpoint="contacts")
        else:
            params: dict[str, Any] = {"status": "all", "limit": PAGE_LIMIT}
            if updated_after:
                params["updated_after"] = updated_after
            answer = self._call("GET", f"{self._base_url}/contacts", endpoint="contacts", params=params)
        return [contact for contact in map(_contact, _items(answer, "contacts")) if contact], _next_link(answer)

    def find_contact(self, email: str) -> str | None:
        """GET /contacts?email=...: the id of the (not deleted) contact with this address, or None."""
        answer = self._call("GET", f"{self._base_url}/contacts", endpoint="lookup", params={"email": email})
        found = [contact for contact in map(_contact, _items(answer, "contacts")) if contact and not contact.deleted]
        return next((contact.contact_id for contact in found if contact.email == email), None)

    def count_contacts(self, criteria: dict[str, str]) -> int | None:
        """How many contacts match (``contacts_count`` of GET /contacts?include_count=true&limit=1)."""
        params = {**criteria, "include_count": "true", "limit": 1}
        answer = self._call("GET", f"{self._base_url}/contacts", endpoint="count", params=params)
        total = answer.get("contacts_count") if isinstance(answer, dict) else None
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    def _resolve(self, href: str) -> str:
        """A ``_links`` href on the configured API origin; anything else is refused (the token goes with it)."""
        url = urljoin(self._base_url + "/", href)  # links are relative to the API host ("/v3/activities?...")
        if _origin(url) != _origin(self._base_url):
            count("ForeignLinksRefused")
            logger.error(
                "Constant Contact returned a link to another host; not followed",
                extra={"host": urlsplit(url).netloc[:100]},
            )
            raise PermanentApiError("Constant Contact returned a link to another host; not followed")
        return url

    def _call(self, method: str, url: str, *, endpoint: str, **kwargs: Any) -> Any:
        token = self._tokens.access_token()
        refreshed = False
        throttled = 0
        while True:
            self._limiter.acquire()
            response = self._send(method, url, token, endpoint, **kwargs)
            status = response.status_code
            if status == 401 and not refreshed:
                logger.info("Constant Contact answered 401; refreshing the access token", extra={"endpoint": endpoint})
                token = self._tokens.after_unauthorized(token)
                refreshed = True
                continue
            if status == 429:
                key = _error_key(response)
                if key == "quota_exceeded":
                    count("QuotaExceeded")
                    raise QuotaExceeded("Constant Contact daily quota exceeded", status=429, key=key)
                if throttled < len(THROTTLE_BACKOFF_SECONDS):
                    pause = THROTTLE_BACKOFF_SECONDS[throttled] * (1 + random.random() / 2)  # nosec B311
                    throttled += 1
                    count("Throttled")
                    logger.warning(
                        "Constant Contact throttled the call; backing off",
                        extra={
                            "endpoint": endpoint,
                            "error_key": key,
                            "backoff_seconds": round(pause, 2),
                            "attempt": throttled,
                        },
                    )
                    self._sleep(pause)
                    continue
                raise TransientApiError("Constant Contact kept throttling", status=429, key=key)
            return _answer(response, endpoint)

    def _send(self, method: str, url: str, token: str, endpoint: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if "json" in kwargs:
            headers["Content-Type"] = "application/json"
        try:
            response = self._session.request(method, url, headers=headers, timeout=self._timeouts, **kwargs)
        except requests.ConnectTimeout:
            count_call(endpoint, "timeout")
            raise TransientApiError(f"Constant Contact {endpoint} could not be reached (connect timeout)") from None
        except requests.Timeout:
            count_call(endpoint, "timeout")
            raise TransientApiError(f"Constant Contact {endpoint} timed out", maybe_done=True) from None
        except requests.RequestException as error:
            count_call(endpoint, "connection")
            sent = "NewConnectionError" not in repr(error)  # refused before the request was sent: nothing happened
            raise TransientApiError(
                f"Constant Contact {endpoint} connection failed: {type(error).__name__}", maybe_done=sent
            ) from None
        count_call(endpoint, f"{response.status_code // 100}xx")
        return response


def _items(answer: Any, name: str) -> list[dict[str, Any]]:
    items = answer.get(name) if isinstance(answer, dict) else None
    return [item for item in items or () if isinstance(item, dict)]


def _next_link(answer: Any) -> str | None:
    """``_links.next.href`` of a page (absent or empty on the last page)."""
    links = answer.get("_links") if isinstance(answer, dict) else None
    link = ((links or {}).get("next") or {}).get("href") if isinstance(links, dict) else None
    return link if isinstance(link, str) and link else None


def _contact(item: dict[str, Any]) -> Contact | None:
    email = item.get("email_address")
    address = email.get("address") if isinstance(email, dict) else None
    if not item.get("contact_id") or not isinstance(address, str):
        return None
    return Contact(str(item["contact_id"]), address.strip().lower(), deleted=bool(item.get("deleted_at")))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _answer(response: requests.Response, endpoint: str) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        try:
            return response.json()
        except ValueError:
            raise TransientApiError(
                f"Constant Contact {endpoint} answered {status} without JSON", status=status
            ) from None
    key, message = _error(response)
    text = f"Constant Contact {endpoint} answered {status}" + (f" {key}: {message}" if key or message else "")
    if status == 401:
        raise AuthenticationError(text + " (after a token refresh)", status=status, key=key)
    if status in (400, 403, 404, 405, 409, 415, 422):
        raise PermanentApiError(text, status=status, key=key)
    raise TransientApiError(text, status=status, key=key, maybe_done=status >= 500)


def _error(response: requests.Response) -> tuple[str, str]:
    """Constant Contact's error bodies are a list of {error_key, error_message} or one such object."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return "", ""
    key = str(body.get("error_key") or body.get("error") or "")
    message = str(body.get("error_message") or body.get("error_description") or "")
    return key[:100], message[:300]


def _error_key(response: requests.Response) -> str:
    return _error(response)[0]
