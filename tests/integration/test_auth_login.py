"""`untag auth login` end to end: the CLI in a thread (``main(argv)``, output read with capsys), the Constant Contact
simulator as the authorization server, moto as AWS, and this test as the browser (``requests`` follows the redirect
to the CLI's listener). No token, code, verifier or client secret may appear in what the command prints.
"""

from __future__ import annotations

import json
import re
import socket
import stat
import threading
import time
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests

from untag_operator import login as login_module
from untag_operator.cli import main

SECRET_ENV = "CC_CLIENT_SECRET"
URL_LINE = re.compile(r"^  (http://\S+/authorize\?\S+)$", re.M)


class Run:
    """One `untag auth login` in a background thread; its exit code, stdout and stderr once finished."""

    def __init__(self, capsys, argv: list[str]):
        self._capsys = capsys
        self.out = self.err = ""
        self.code: int | None = None
        capsys.readouterr()
        self._thread = threading.Thread(target=lambda: setattr(self, "code", main(argv)), daemon=True)
        self._thread.start()

    def _read(self) -> None:
        captured = self._capsys.readouterr()
        self.out, self.err = self.out + captured.out, self.err + captured.err

    def authorize_url(self, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read()
            if found := URL_LINE.search(self.err):
                return found.group(1)
            if not self._thread.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no authorize URL printed: {self.err!r}")

    def finish(self, timeout: float = 15) -> Run:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "untag auth login did not finish"
        self._read()
        return self


@pytest.fixture
def sim(simulator, monkeypatch):
    simulator.token_rate_limit_per_second = None
    monkeypatch.setenv(SECRET_ENV, simulator.client_secret)
    return simulator


@pytest.fixture
def verifiers(monkeypatch) -> list[str]:
    """Every PKCE verifier the command makes, to check it is never printed."""
    made: list[str] = []
    original = login_module.new_verifier
    monkeypatch.setattr(login_module, "new_verifier", lambda: made.append(original()) or made[-1])
    return made


def login_argv(sim, *extra: str) -> list[str]:
    return [
        "auth",
        "login",
        "--client-id",
        sim.client_id,
        "--authorize-url",
        sim.authorize_url,
        "--token-url",
        sim.token_url,
        "--no-browser",
        "--timeout",
        "10",
        *extra,
    ]


def browse(url: str) -> requests.Response:
    """What the browser does: open the authorize URL, follow the redirect back to the listener."""
    return requests.get(url, allow_redirects=True, timeout=10)


def assert_nothing_secret(run: Run, sim, verifiers: list[str]) -> None:
    printed = run.out + run.err
    for value in (*sim.issued_secrets, *verifiers, sim.client_secret):
        assert value not in printed


def read_secret(secret_id: str) -> dict:
    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])


def cloudformation_stack(stack, name: str = "cc-untag-login") -> str:
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},  # a stack needs one resource
        "Outputs": {"TokenSecretArn": {"Value": stack.secret_id}, "IntakeQueueUrl": {"Value": stack.queue_url}},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    return name


# --- it works -------------------------------------------------------------------------------------------------


def test_login_writes_the_stacks_token_secret_and_the_service_refreshes_with_it(stack, sim, capsys, verifiers):
    from untag.controls import Controls
    from untag.tokens import SecretsManagerSecret, TokenProvider

    secrets_manager = boto3.client("secretsmanager")
    deployed = {"access_token": "fill-me-after-deploy", "placeholder": "Q3x9", "team": "crm"}  # as template.yaml's
    secrets_manager.put_secret_value(SecretId=stack.secret_id, SecretString=json.dumps(deployed))
    run = Run(capsys, login_argv(sim, "--stack", cloudformation_stack(stack)))
    url = run.authorize_url()
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["contact_data offline_access"] and query["code_challenge_method"] == ["S256"]
    page = browse(url)
    run.finish()
    assert run.code == 0, run.err
    assert page.status_code == 200 and "You can close this tab" in page.text

    secret = read_secret(stack.secret_id)
    assert set(secret) == {
        "access_token",
        "refresh_token",
        "client_id",
        "client_secret",
        "expires_at",
        "expires_in",
        "team",
    }
    assert (secret["client_id"], secret["client_secret"], secret["team"]) == ("sim-client", "sim-secret", "crm")
    assert abs(secret["expires_at"] - (time.time() + 86400)) < 60 and secret["expires_in"] == 86400
    assert secret["access_token"] in sim.issued_secrets and secret["refresh_token"] in sim.issued_secrets
    assert sim.code_exchanges == 1 and sim.invalid_grants == 0
    [authorization] = sim.authorizations
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", authorization["redirect_uri"])
    assert f"The redirect URI is {authorization['redirect_uri']}" in run.err
    assert run.out.startswith(f"tokens written to secret {stack.secret_id} (version ")
    assert "scope contact_data offline_access; the access token expires at 20" in run.out
    assert_nothing_secret(run, sim, verifiers)

    # The service's own token provider renews them when Constant Contact refuses the access token.
    store = Controls(lambda: boto3.client("dynamodb"), stack.table_name)
    provider = TokenProvider(SecretsManagerSecret(lambda: secrets_manager, stack.secret_id), sim.token_url, store)
    assert provider.access_token() == secret["access_token"]
    sim.expire_access_tokens()
    renewed = provider.after_unauthorized(secret["access_token"])
    assert renewed != secret["access_token"] and sim.token_refreshes == 1
    assert read_secret(stack.secret_id)["refresh_token"] != secret["refresh_token"]  # rotated, stored


def test_login_to_a_token_file_keeps_its_other_keys_and_makes_it_owner_only(sim, capsys, tmp_path, verifiers):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"access_token": "old", "refresh_token": "old", "note": "keep"}))
    path.chmod(0o644)
    port = _free_port()
    run = Run(capsys, login_argv(sim, "--token-file", str(path), "--redirect-port", str(port)))
    url = run.authorize_url()
    assert parse_qs(urlsplit(url).query)["redirect_uri"] == [f"http://127.0.0.1:{port}/callback"]
    browse(url)
    run.finish()
    assert run.code == 0, run.err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = json.loads(path.read_text())
    assert tokens["note"] == "keep" and tokens["access_token"] in sim.issued_secrets
    assert tokens["refresh_token"] in sim.issued_secrets and tokens["client_secret"] == "sim-secret"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    assert run.out.startswith(f"tokens written to {path} (mode 0600): scope contact_data offline_access")
    assert_nothing_secret(run, sim, verifiers)


def test_a_secret_id_and_a_fixed_redirect_uri(stack, sim, capsys, verifiers):
    redirect_uri = f"http://localhost:{_free_port()}/cc/back"
    run = Run(capsys, login_argv(sim, "--secret-id", stack.secret_id, "--redirect-uri", redirect_uri))
    url = run.authorize_url()
    assert parse_qs(urlsplit(url).query)["redirect_uri"] == [redirect_uri]
    browse(url)  # the redirect goes to localhost, which the listener on 127.0.0.1 answers
    run.finish()
    assert run.code == 0, run.err
    assert read_secret(stack.secret_id)["access_token"] in sim.issued_secrets
    assert sim.authorizations[0]["redirect_uri"] == redirect_uri
    assert_nothing_secret(run, sim, verifiers)


def test_a_public_client_sends_its_client_id_and_is_warned_the_service_cannot_refresh(
    stack, sim, capsys, monkeypatch, verifiers
):
    monkeypatch.delenv(SECRET_ENV)
    run = Run(capsys, login_argv(sim, "--secret-id", stack.secret_id))
    browse(run.authorize_url())
    run.finish()
    assert run.code == 0, run.err
    secret = read_secret(stack.secret_id)
    assert secret["client_id"] == "sim-client" and "client_secret" not in secret
    assert "no client secret (a public PKCE client)" in run.err
    assert_nothing_secret(run, sim, verifiers)


def test_without_offline_access_it_warns_that_the_tokens_cannot_be_renewed(sim, capsys, tmp_path, verifiers):
    path = tmp_path / "tokens.json"
    run = Run(capsys, login_argv(sim, "--token-file", str(path), "--scope", "contact_data"))
    browse(run.authorize_url())
    assert run.finish().code == 0, run.err
    assert "refresh_token" not in json.loads(path.read_text())
    assert "scope contact_data;" in run.out and "no refresh token came back (is offline_access in --scope?)" in run.err
    assert_nothing_secret(run, sim, verifiers)


def test_the_secret_from_a_named_variable_or_a_prompt(sim, capsys, monkeypatch, tmp_path, verifiers):
    monkeypatch.delenv(SECRET_ENV)
    monkeypatch.setenv("MY_CC_SECRET", sim.client_secret)
    run = Run(capsys, login_argv(sim, "--token-file", str(tmp_path / "a.json"), "--client-secret-env", "MY_CC_SECRET"))
    browse(run.authorize_url())
    assert run.finish().code == 0, run.err
    prompts: list[str] = []
    monkeypatch.setattr(login_module.getpass, "getpass", lambda prompt: prompts.append(prompt) or sim.client_secret)
    run = Run(capsys, login_argv(sim, "--token-file", str(tmp_path / "b.json"), "--ask-secret"))
    browse(run.authorize_url())
    assert run.finish().code == 0, run.err
    assert prompts and json.loads((tmp_path / "b.json").read_text())["client_secret"] == "sim-secret"
    assert_nothing_secret(run, sim, verifiers)


def test_without_no_browser_the_url_is_opened(sim, capsys, monkeypatch, tmp_path, verifiers):
    opened: list[requests.Response] = []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(login_module.webbrowser, "open", lambda url, new=0: opened.append(browse(url)) or True)
    argv = [arg for arg in login_argv(sim, "--token-file", str(tmp_path / "t.json")) if arg != "--no-browser"]
    run = Run(capsys, argv).finish()
    assert run.code == 0, run.err
    assert [page.status_code for page in opened] == [200]


# --- it fails cleanly ----------------------------------------------------------------------------------------


def test_a_state_mismatch_fails_and_nothing_is_exchanged(stack, sim, capsys, verifiers):
    before = read_secret(stack.secret_id)
    run = Run(capsys, login_argv(sim, "--secret-id", stack.secret_id))
    url = re.sub(r"state=[^&]+", "state=forged", run.authorize_url())
    page = browse(url)
    run.finish()
    assert run.code == 1 and run.out == ""
    assert "untag: error: the browser came back with a state that is not this login's" in run.err
    assert page.status_code == 400 and "state mismatch" in page.text
    assert sim.code_exchanges == 0 and read_secret(stack.secret_id) == before
    assert_nothing_secret(run, sim, verifiers)


def test_a_wrong_verifier_is_refused_and_nothing_is_written(stack, sim, capsys, verifiers):
    before = read_secret(stack.secret_id)
    run = Run(capsys, login_argv(sim, "--secret-id", stack.secret_id))
    other_challenge = "A" * 43  # the challenge of some other verifier
    browse(re.sub(r"code_challenge=[^&]+", f"code_challenge={other_challenge}", run.authorize_url()))
    run.finish()
    assert run.code == 1 and run.out == ""
    assert "the token endpoint refused the code (invalid_grant: PKCE verification failed.)" in run.err
    assert "run the command again" in run.err
    assert sim.invalid_grants == 1 and read_secret(stack.secret_id) == before
    assert_nothing_secret(run, sim, verifiers)


def test_an_error_in_the_callback_fails_clearly(sim, capsys, tmp_path, verifiers):
    path = tmp_path / "tokens.json"
    run = Run(capsys, login_argv(sim, "--token-file", str(path), "--scope", "contact_data everything"))
    page = browse(run.authorize_url())
    run.finish()
    assert run.code == 1 and page.status_code == 400
    assert "untag: error: Constant Contact did not authorize untag (invalid_scope: scope must be among" in run.err
    assert not path.exists()
    assert_nothing_secret(run, sim, verifiers)
    sim.malformed.clear()  # the invalid scope is the point of this test


def test_a_browser_that_never_comes_back_times_out(sim, capsys, tmp_path):
    run = Run(capsys, [*login_argv(sim, "--token-file", str(tmp_path / "t.json")), "--timeout", "0.3"]).finish()
    assert run.code == 1 and "the browser did not come back within 0.3 s: nothing was written" in run.err
    assert sim.authorizations == [] and not (tmp_path / "t.json").exists()


def test_the_listener_answers_only_its_callback(sim, capsys, tmp_path):
    port = _free_port()
    run = Run(capsys, login_argv(sim, "--token-file", str(tmp_path / "t.json"), "--redirect-port", str(port)))
    url = run.authorize_url()
    assert requests.get(f"http://127.0.0.1:{port}/favicon.ico", timeout=5).status_code == 404
    assert requests.get(f"http://127.0.0.1:{port}/callback?hello=1", timeout=5).status_code == 400
    browse(url)
    assert run.finish().code == 0, run.err


# --- usage errors: before any browser -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--client-secret", "s3cr3t-value", "--token-file", "t.json"], "never taken on the command line"),
        (["--client-secret=s3cr3t-value", "--token-file", "t.json"], "never taken on the command line"),
        (["--client-secret-env", "s3cr3t-value", "--token-file", "t.json"], "takes the NAME of an environment"),
        (["--token-file", "t.json", "--stack", "cc-untag-dev"], "give --stack or --token-file, not both"),
        ([], "where do the tokens go?"),
        (["--token-file", "t.json", "--redirect-uri", "https://127.0.0.1:8765/cb"], "must be a loopback http URI"),
        (["--token-file", "t.json", "--redirect-uri", "http://example.com:8765/cb"], "must be a loopback http URI"),
        (["--token-file", "t.json", "--redirect-port", "70000"], "--redirect-port must be between"),
        (["--token-file", "t.json", "--token-url", "http://example.com/token"], "--token-url must be an https URL"),
        (["--token-file", "missing/t.json"], "the folder missing does not exist"),
    ],
)
def test_usage_errors(sim, capsys, monkeypatch, tmp_path, extra, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UNTAG_STACK", raising=False)
    monkeypatch.delenv("UNTAG_OUTPUTS", raising=False)
    run = Run(capsys, login_argv(sim, *extra)).finish()
    assert run.code == 2 and run.out == "", run.err
    assert message in run.err and "s3cr3t-value" not in run.err
    assert "/authorize" not in run.err and sim.authorizations == []


def test_destination_errors_come_before_the_browser(stack, sim, capsys, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not JSON")
    run = Run(capsys, login_argv(sim, "--token-file", str(path))).finish()
    assert run.code == 1 and "holds something other than a JSON object" in run.err
    assert path.read_text() == "not JSON"
    run = Run(capsys, login_argv(sim, "--secret-id", "no-such-secret")).finish()
    assert run.code == 1 and "secret 'no-such-secret' not found in us-east-1" in run.err
    run = Run(capsys, login_argv(sim, "--stack", "no-such-stack")).finish()
    assert run.code == 1 and "stack 'no-such-stack' not found" in run.err
    assert "/authorize" not in run.err and sim.authorizations == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the secret's fields -------------------------------------------------------------------------------------


def test_token_values_and_what_a_login_keeps_of_the_secret():
    answer = {"access_token": "a", "refresh_token": "r", "expires_in": "3600", "token_type": "Bearer", "id_token": "i"}
    values = login_module.token_values(answer, "client-2", None, now=1000.5)
    expected = {"access_token": "a", "refresh_token": "r", "client_id": "client-2", "expires_at": 4600}
    assert values == {**expected, "expires_in": 3600.0}
    held = {"access_token": "x", "placeholder": "Q3", "client_id": "client-1", "client_secret": "s1", "team": "crm"}
    assert login_module.merged(held, values) == {**values, "team": "crm"}  # another client's secret goes
    same_client = {**held, "client_id": "client-2", "expires_in": 60}
    assert login_module.merged(same_client, values) == {**values, "client_secret": "s1", "team": "crm"}
    assert "expires_at" not in login_module.token_values({"access_token": "a", "expires_in": True}, "c", "s", 0)
