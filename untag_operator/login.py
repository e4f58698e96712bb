"""``untag auth login``: the first Constant Contact tokens, by the OAuth2 authorization-code flow with PKCE, written
where the service reads them: the stack's token secret (``--stack``, its output TokenSecretArn), a secret named by
``--secret-id``, or a token file (``--token-file``, mode 0600).

    untag auth login --stack cc-untag-dev --client-id API_KEY   # the secret in $CC_CLIENT_SECRET, or --ask-secret

The client secret comes from an environment variable or a hidden prompt, never from the command line. What is
printed says what was written where (scope, expiry): never a token, the code, the verifier or the client secret.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hmac
import json
import os
import re
import secrets
import sys
import tempfile
import threading
import time
import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from untag_operator.console import EXIT_USAGE, CliError, note
from untag_operator.oauth import (
    CALLBACK_PATH,
    CallbackListener,
    authorize_url,
    check_endpoint,
    code_challenge,
    exchange_code,
    loopback_redirect,
    new_verifier,
    printable,
)
from untag_operator.target import aws_session, endpoint_of, resolve_target

SECRET_OUTPUT = "TokenSecretArn"
DEFAULT_SECRET_ENV = "CC_CLIENT_SECRET"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TOKEN_KEYS = ("access_token", "refresh_token", "expires_at", "expires_in")  # replaced as a whole by a login
PLACEHOLDER_KEYS = ("placeholder",)  # what template.yaml generates in the secret before the first tokens


def cmd_auth_login(args: argparse.Namespace) -> int:
    if getattr(args, "plain_client_secret", None) is not None:
        raise CliError(
            "the client secret is never taken on the command line (shell history, process list): put it in an "
            f"environment variable ({DEFAULT_SECRET_ENV}, or one named by --client-secret-env) or use --ask-secret",
            EXIT_USAGE,
        )
    client_id, scope = args.client_id.strip(), " ".join(args.scope.split())
    if not client_id or not scope:
        raise CliError("--client-id and --scope must not be empty", EXIT_USAGE)
    if args.timeout <= 0:
        raise CliError("--timeout must be positive", EXIT_USAGE)
    check_endpoint(args.authorize_url, "--authorize-url")
    check_endpoint(args.token_url, "--token-url")
    if args.redirect_uri:
        _, port, path = loopback_redirect(args.redirect_uri)
    elif 0 <= args.redirect_port <= 65535:
        port, path = args.redirect_port, CALLBACK_PATH
    else:
        raise CliError("--redirect-port must be between 0 (any free port) and 65535", EXIT_USAGE)
    client_secret = read_client_secret(args)
    destination = resolve_destination(args)
    destination.check()  # before the browser: a code lasts minutes and works once

    state, verifier = secrets.token_urlsafe(24), new_verifier()
    with CallbackListener(port, path, state) as listener:
        redirect_uri = args.redirect_uri or f"http://127.0.0.1:{listener.port}{CALLBACK_PATH}"
        url = authorize_url(
            args.authorize_url,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            challenge=code_challenge(verifier),
        )
        note(
            f"The redirect URI is {redirect_uri}: it must be one of the app's redirect URIs (Constant Contact "
            f"developer portal, My Applications); --redirect-port or --redirect-uri fix it.\n"
            f"Open this URL in a browser, sign in to Constant Contact and allow access:\n\n  {url}\n\n"
            f"Waiting up to {args.timeout:g} s for the browser to come back (Ctrl-C to give up)..."
        )
        if not args.no_browser:
            open_browser(url)
        params = listener.wait(args.timeout)
    if params is None:
        raise CliError(f"the browser did not come back within {args.timeout:g} s: nothing was written")
    if not hmac.compare_digest(params.get("state", ""), state):
        raise CliError(
            "the browser came back with a state that is not this login's (an old tab, or a link from someone "
            "else): nothing was exchanged or written; run the command again"
        )
    if "error" in params or not params.get("code"):
        error = printable(params.get("error")) or "no code"
        description = printable(params.get("error_description"))
        raise CliError(
            f"Constant Contact did not authorize untag ({error}{': ' + description if description else ''}): "
            f"nothing was written"
        )
    answer = exchange_code(
        args.token_url,
        client_id=client_id,
        client_secret=client_secret,
        code=params["code"],
        redirect_uri=redirect_uri,
        verifier=verifier,
    )
    values = token_values(answer, client_id, client_secret, time.time())
    try:
        where = destination.write(values)
    except (ClientError, CliError):
        note("untag: the authorization worked but the tokens could not be written; run the command again")
        raise
    report(where, values, answer, scope, client_secret is not None)
    return 0


def read_client_secret(args: argparse.Namespace) -> str | None:
    """The client secret from the hidden prompt (--ask-secret) or the environment; None: a public PKCE client."""
    if args.ask_secret:
        try:
            secret = getpass.getpass("Constant Contact client secret (hidden): ").strip()
        except EOFError:
            secret = ""
        if not secret:
            raise CliError("no client secret typed", EXIT_USAGE)
        return secret
    if args.client_secret_env is not None:
        name = args.client_secret_env
        if not ENV_NAME.fullmatch(name) or not os.environ.get(name, "").strip():
            raise CliError(  # the name is not echoed: it might be the secret, given by mistake
                "--client-secret-env takes the NAME of an environment variable holding the client secret, and "
                "that variable is not set or is empty",
                EXIT_USAGE,
            )
        return os.environ[name].strip()
    return os.environ.get(DEFAULT_SECRET_ENV, "").strip() or None


def open_browser(url: str) -> None:
    """Ask the desktop to open the URL, in the background (never blocking the wait); nothing without a desktop."""
    if sys.platform.startswith("linux") and not any(
        os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    ):
        return  # no graphical session: a text browser would take over this terminal

    def run() -> None:
        with contextlib.suppress(Exception):
            webbrowser.open(url, new=1)

    threading.Thread(target=run, name="untag-browser", daemon=True).start()


def token_values(answer: dict[str, Any], client_id: str, client_secret: str | None, now: float) -> dict[str, Any]:
    """The token secret's fields (docs/contracts.md section 3) from the token endpoint's answer."""
    values: dict[str, Any] = {"access_token": answer["access_token"]}
    if isinstance(answer.get("refresh_token"), str) and answer["refresh_token"]:
        values["refresh_token"] = answer["refresh_token"]
    values["client_id"] = client_id
    if client_secret:
        values["client_secret"] = client_secret
    lifetime = answer.get("expires_in")
    if isinstance(lifetime, str):  # a number, however it is written
        with contextlib.suppress(ValueError):
            lifetime = float(lifetime)
    if isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool) and lifetime > 0:
        values["expires_at"] = int(now + lifetime)
        values["expires_in"] = lifetime  # as the service keeps it: refreshes short-lived tokens in time
    return values


def merged(current: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The new tokens over what the secret held: other keys stay; the token fields and the template's
    placeholder go; the old client secret stays only for the same client."""
    kept = {key: value for key, value in current.items() if key not in TOKEN_KEYS and key not in PLACEHOLDER_KEYS}
    if current.get("client_id") != values["client_id"]:
        kept.pop("client_secret", None)
    return {**kept, **values}


def report(where: str, values: dict[str, Any], answer: dict[str, Any], scope: str, has_secret: bool) -> None:
    granted = printable(answer.get("scope")) or scope
    expiry = values.get("expires_at")
    expires = (
        "the access token expires at " + datetime.fromtimestamp(expiry, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if expiry
        else "the access token's lifetime was not given"
    )
    print(f"tokens written to {where}: scope {granted}; {expires}")
    if "refresh_token" not in values:
        note("untag: warning: no refresh token came back (is offline_access in --scope?): the access token cannot be")
        note("  renewed; log in again before it expires")
    elif not has_secret:
        note("untag: warning: no client secret (a public PKCE client): the service refreshes with client_id and")
        note(f"  client_secret, so it cannot renew these tokens; log in with the secret in ${DEFAULT_SECRET_ENV}")


# --- where the tokens go -----------------------------------------------------------------------------------------


def resolve_destination(args: argparse.Namespace) -> SecretDestination | FileDestination:
    """Exactly one of --stack / --outputs (the stack's token secret), --secret-id, --token-file; else UNTAG_STACK or
    UNTAG_OUTPUTS."""
    options = {
        "--stack": getattr(args, "stack", None),
        "--outputs": getattr(args, "outputs", None),
        "--secret-id": args.secret_id,
        "--token-file": args.token_file,
    }
    given = [option for option, value in options.items() if value]
    if len(given) > 1:
        raise CliError(f"the tokens go to one place: give {' or '.join(given)}, not both", EXIT_USAGE)
    if args.token_file:
        return FileDestination(Path(args.token_file).expanduser())
    if args.secret_id:
        parts = args.secret_id.split(":")
        arn_region = parts[3] if len(parts) > 4 and parts[0] == "arn" else None
        session = aws_session(args, getattr(args, "region", None) or arn_region)
        return SecretDestination(session.client("secretsmanager", endpoint_url=endpoint_of(args)), args.secret_id)
    if not given and not (os.environ.get("UNTAG_STACK") or os.environ.get("UNTAG_OUTPUTS")):
        raise CliError(
            "where do the tokens go? give --stack NAME (the stack's token secret), --secret-id ID or --token-file PATH",
            EXIT_USAGE,
        )
    target = resolve_target(args, (SECRET_OUTPUT,))
    return SecretDestination(target.client("secretsmanager"), target.output(SECRET_OUTPUT))


class SecretDestination:
    """A Secrets Manager secret: a new version with the tokens, keeping the other keys the secret held."""

    def __init__(self, client: Any, secret_id: str):
        self._client = client
        self.secret_id = secret_id

    def check(self) -> None:
        self._current()

    def write(self, values: dict[str, Any]) -> str:
        value = json.dumps(merged(self._current(), values))
        version = self._client.put_secret_value(SecretId=self.secret_id, SecretString=value).get("VersionId")
        return f"secret {self.secret_id}" + (f" (version {version})" if version else "")

    def _current(self) -> dict[str, Any]:
        try:
            answer = self._client.get_secret_value(SecretId=self.secret_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            try:  # a secret without a value yet, or no secret at all
                self._client.describe_secret(SecretId=self.secret_id)
            except ClientError:
                region = self._client.meta.region_name
                raise CliError(f"secret {self.secret_id!r} not found in {region} (check it, and --region)") from None
            return {}
        try:
            value = json.loads(answer.get("SecretString") or "{}")
        except ValueError:
            return {}  # not JSON: the tokens replace it
        return value if isinstance(value, dict) else {}


class FileDestination:
    """A JSON file in the token secret's format, replaced atomically, readable by its owner only (0600)."""

    def __init__(self, path: Path):
        self.path = path

    def check(self) -> None:
        if not self.path.parent.is_dir():
            raise CliError(f"--token-file: the folder {self.path.parent} does not exist", EXIT_USAGE)
        if self.path.is_dir():
            raise CliError(f"--token-file: {self.path} is a folder", EXIT_USAGE)
        if not os.access(self.path.parent, os.W_OK):
            raise CliError(f"--token-file: cannot write in {self.path.parent}")
        self._current()

    def write(self, values: dict[str, Any]) -> str:
        data = json.dumps(merged(self._current(), values), indent=2) + "\n"
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as error:
            raise CliError(f"cannot write in {self.path.parent}: {error.strerror or error}") from None
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                os.chmod(temporary, 0o600)  # mkstemp's mode already; said again, whatever the platform
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise CliError(f"cannot write {self.path}: {error.strerror or error}") from None
        return f"{self.path} (mode 0600)"

    def _current(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as error:
            raise CliError(f"cannot read {self.path}: {getattr(error, 'strerror', None) or error}") from None
        try:
            value = json.loads(text) if text.strip() else {}
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise CliError(
                f"{self.path} holds something other than a JSON object: move it away or choose another --token-file"
            )
        return value
