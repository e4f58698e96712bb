"""Constant Contact's OAuth2 authorization-code flow with PKCE, from a terminal: the verifier and its challenge, the
authorize URL, a one-shot listener on 127.0.0.1 for the browser's return, and the exchange of the code for tokens.

Nothing here prints, logs or puts in an exception message a token, the code, the verifier or the client secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from untag_operator.console import EXIT_USAGE, CliError

AUTHORIZE_URL = "https://authz.constantcontact.com/oauth2/default/v1/authorize"
TOKEN_URL = "https://authz.constantcontact.com/oauth2/default/v1/token"
DEFAULT_SCOPE = "contact_data offline_access"  # offline_access: a refresh token comes with the access token
CALLBACK_PATH = "/callback"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
EXCHANGE_TIMEOUT = 30.0
HINTS = {
    "invalid_grant": ": the code is spent or expired (it lasts minutes), or the verifier or the redirect URI did "
    "not match; run the command again",
    "invalid_client": ": check --client-id and the client secret",
}


def new_verifier() -> str:
    """A PKCE code verifier: 64 random URL-safe characters (RFC 7636 asks for 43 to 128)."""
    return secrets.token_urlsafe(48)


def code_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier: base64url(SHA-256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def authorize_url(base: str, *, client_id: str, redirect_uri: str, scope: str, state: str, challenge: str) -> str:
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{base}{'&' if urlsplit(base).query else '?'}{urlencode(params, quote_via=quote)}"


def check_endpoint(url: str, option: str) -> str:
    """An https URL, or http on this machine (a simulator): never send the code or the secret in clear text."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in (*LOOPBACK_HOSTS, "::1"):
        return url
    raise CliError(f"{option} must be an https URL (or http on 127.0.0.1 / localhost)", EXIT_USAGE)


def loopback_redirect(uri: str) -> tuple[str, int, str]:
    """The listener's host, port and path for a redirect URI, which must be http on 127.0.0.1 or localhost."""
    parts = urlsplit(uri)
    try:
        port = parts.port or 80
    except ValueError:
        port = -1
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or port < 0 or parts.query or parts.fragment:
        raise CliError(
            "--redirect-uri must be a loopback http URI without query or fragment, such as "
            "http://127.0.0.1:8765/callback (the listener runs on this machine)",
            EXIT_USAGE,
        )
    return "127.0.0.1", port, parts.path or "/"


class CallbackListener:
    """A one-shot HTTP server on 127.0.0.1 that waits for the browser to come back with ``code`` (or ``error``)
    and ``state``, answers a page saying the tab can be closed, and hands over the parameters."""

    def __init__(self, port: int, path: str, state: str):
        try:
            self._server = _CallbackServer(("127.0.0.1", port), path, state)
        except OSError as error:
            raise CliError(
                f"cannot listen on 127.0.0.1:{port} for the browser's return: {error.strerror or error} "
                f"(choose another --redirect-port, or free that one)"
            ) from None
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="untag-oauth-callback", daemon=True
        )
        self._thread.start()

    def wait(self, timeout: float) -> dict[str, str] | None:
        """The callback's query parameters, or None when the browser did not come back in time."""
        if not self._server.answered.wait(timeout):
            return None
        return self._server.answer

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> CallbackListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _CallbackServer(HTTPServer):
    def __init__(self, address: tuple[str, int], path: str, state: str):
        super().__init__(address, _CallbackHandler)
        self.callback_path = path
        self.state = state
        self.answer: dict[str, str] | None = None
        self.answered = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser that hangs up early: never print a traceback (the request line holds the code)


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        url = urlsplit(self.path)
        if url.path != self.server.callback_path:
            self._page(404, "Not found", "This is untag's login listener; it only answers the redirect URI.")
            return
        params = {key: values[0] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        if self.server.answered.is_set():
            self._page(409, "Already done", "This login is finished; you can close this tab.")
            return
        if "code" not in params and "error" not in params:
            self._page(400, "Not an authorization", "The request carries neither a code nor an error.")
            return
        if not hmac.compare_digest(params.get("state", ""), self.server.state):
            self._page(400, "Login failed", "The answer is not this login's (state mismatch). See the terminal.")
        elif "error" in params:
            self._page(400, "Login failed", "Constant Contact did not authorize untag. See the terminal.")
        else:
            self._page(200, "Logged in", "untag received the authorization. You can close this tab.")
        self.server.answer = params
        self.server.answered.set()

    def _page(self, status: int, title: str, text: str) -> None:
        body = (
            f'<!doctype html><html><head><meta charset="utf-8"><title>untag: {html.escape(title)}</title></head>'
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line holds the authorization code: log nothing


def exchange_code(
    token_url: str,
    *,
    client_id: str,
    client_secret: str | None,
    code: str,
    redirect_uri: str,
    verifier: str,
    timeout: float = EXCHANGE_TIMEOUT,
) -> dict[str, Any]:
    """The token endpoint's answer for the code: ``grant_type=authorization_code`` with the verifier, the client
    authenticated by HTTP Basic when it has a secret, else by its ``client_id`` in the form (a public client)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    if client_secret:
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    else:
        form["client_id"] = client_id
    request = urllib.request.Request(check_endpoint(token_url, "--token-url"), urlencode(form).encode(), headers)
    try:  # the scheme is https, or http on loopback: checked above
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec B310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise CliError(f"cannot reach the token endpoint {token_url}: {reason}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CliError(f"the token endpoint answered HTTP {status} without a JSON object")
    if status != 200:
        error = printable(answer.get("error"), code, verifier, client_secret) or f"HTTP {status}"
        description = printable(answer.get("error_description"), code, verifier, client_secret)
        hint = HINTS.get(error, "")
        raise CliError(
            f"the token endpoint refused the code ({error}{': ' + description if description else ''}){hint}"
        )
    if not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        raise CliError(f"the token endpoint answered HTTP {status} without an access_token")
    return answer


def printable(value: Any, *secret_values: str | None) -> str:
    """A short one-line text from the authorization server, with any of the ``secret_values`` cut out."""
    if not isinstance(value, str):
        return ""
    for secret in secret_values:
        if secret:
            value = value.replace(secret, "<redacted>")
    return "".join(c if c.isprintable() else " " for c in value)[:200].strip()
