"""The simulator's authorization endpoint and authorization-code grant (PKCE), driven over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devkit.simulator import ConstantContactSimulator

REDIRECT = "http://127.0.0.1:8765/callback"


@pytest.fixture
def sim():
    with ConstantContactSimulator(rate_limit_per_second=None) as simulator:
        simulator.token_rate_limit_per_second = None
        yield simulator


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize(sim, challenge: str, **overrides) -> requests.Response:
    params = {
        "client_id": sim.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "contact_data offline_access",
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    params = {key: value for key, value in params.items() if value is not None}
    return requests.get(sim.authorize_url, params=params, allow_redirects=False, timeout=5)


def redirected(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def code_for(sim, challenge: str, **overrides) -> str:
    answer = redirected(authorize(sim, challenge, **overrides))
    assert answer["state"] == overrides.get("state", "st-1")
    return answer["code"]


def exchange(sim, code: str, verifier: str, *, basic: bool = True, **form) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    data.update(form)
    if not basic:
        data.setdefault("client_id", sim.client_id)
    auth = (sim.client_id, sim.client_secret) if basic else None
    return requests.post(sim.token_url, data={k: v for k, v in data.items() if v is not None}, auth=auth, timeout=5)


def test_the_authorize_url_sits_beside_the_token_url(sim):
    assert sim.authorize_url == sim.token_url.replace("/v1/token", "/v1/authorize")


def test_a_code_exchanged_with_its_verifier_gives_tokens_that_work_and_refresh(sim):
    verifier, challenge = pkce()
    code = code_for(sim, challenge)
    assert sim.authorizations == [
        {"client_id": "sim-client", "redirect_uri": REDIRECT, "scope": "contact_data offline_access"}
    ]
    answer = exchange(sim, code, verifier)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 86400
    assert tokens["scope"] == "contact_data offline_access" and tokens["id_token"]
    assert {tokens["access_token"], tokens["refresh_token"], code} <= set(sim.issued_secrets)
    api = requests.get(
        f"{sim.base_url}/activities", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=5
    )
    assert api.status_code == 200
    refreshed = requests.post(
        sim.token_url,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(sim.client_id, sim.client_secret),
        timeout=5,
    )
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != tokens["refresh_token"]
    assert (sim.code_exchanges, sim.token_refreshes, sim.invalid_grants) == (1, 1, 0)
    assert sim.malformed == []


def test_a_public_client_exchanges_with_its_client_id_and_no_secret(sim):
    verifier, challenge = pkce()
    answer = exchange(sim, code_for(sim, challenge), verifier, basic=False)
    assert answer.status_code == 200 and answer.json()["access_token"]
    other = exchange(sim, code_for(sim, challenge), verifier, basic=False, client_id="someone-else")
    assert other.status_code == 401 and other.json()["error"] == "invalid_client"
    assert sim.malformed == []


def test_without_offline_access_there_is_no_refresh_token(sim):
    verifier, challenge = pkce()
    tokens = exchange(sim, code_for(sim, challenge, scope="contact_data"), verifier).json()
    assert tokens["scope"] == "contact_data" and "refresh_token" not in tokens


@pytest.mark.parametrize(
    "case",
    ["wrong verifier", "reused code", "other redirect_uri", "unknown code", "expired code"],
)
def test_a_bad_grant_is_invalid_grant(sim, case):
    verifier, challenge = pkce()
    code = code_for(sim, challenge)
    if case == "wrong verifier":
        answer = exchange(sim, code, pkce()[0])
    elif case == "reused code":
        assert exchange(sim, code, verifier).status_code == 200
        answer = exchange(sim, code, verifier)
    elif case == "other redirect_uri":
        answer = exchange(sim, code, verifier, redirect_uri="http://127.0.0.1:9999/callback")
    elif case == "unknown code":
        answer = exchange(sim, "not-a-code", verifier)
    else:
        sim._clock = lambda: 1e12  # long after the code's five minutes
        answer = exchange(sim, code, verifier)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
    assert sim.invalid_grants == 1 and sim.malformed == []
    if case == "wrong verifier":  # the code is spent even so
        assert exchange(sim, code, verifier).status_code == 400


def test_an_incomplete_exchange_is_invalid_request_and_malformed(sim):
    verifier, challenge = pkce()
    missing = exchange(sim, code_for(sim, challenge), None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    short = exchange(sim, code_for(sim, challenge), "too-short")
    assert short.status_code == 400 and "code_verifier" in short.json()["error_description"]
    anonymous = requests.post(
        sim.token_url, data={"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT}, timeout=5
    )
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    assert len(sim.malformed) == 3


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"state": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"scope": "contact_data everything"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
    ],
)
def test_an_invalid_authorization_request_goes_back_with_an_error(sim, overrides, error):
    answer = redirected(authorize(sim, pkce()[1], **overrides))
    assert answer["error"] == error and answer["error_description"] and "code" not in answer
    assert answer.get("state") == overrides.get("state", "st-1")
    assert len(sim.malformed) == 1 and sim.authorizations == []


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"client_id": None}, "invalid_client"),
        ({"redirect_uri": "https://example.com/callback"}, "invalid_request"),
        ({"redirect_uri": "http://192.168.1.5:8080/callback"}, "invalid_request"),
        ({"redirect_uri": "http://127.0.0.1:8765/callback#x"}, "invalid_request"),
        ({"redirect_uri": None}, "invalid_request"),
    ],
)
def test_without_a_known_client_and_a_loopback_redirect_the_error_is_answered_there(sim, overrides, error):
    answer = authorize(sim, pkce()[1], **overrides)
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert answer.json()["error"] == error
    assert sim.authorizations == []


def test_a_repeated_parameter_is_refused(sim):
    url = authorize(sim, pkce()[1]).request.url + "&state=again"
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 400 and "repeated" in answer.json()["error_description"]


def test_a_redirect_uri_with_a_query_keeps_it(sim):
    answer = authorize(sim, pkce()[1], redirect_uri="http://localhost:8765/cb?from=untag")
    location = urlsplit(answer.headers["Location"])
    assert location.netloc == "localhost:8765" and location.path == "/cb"
    assert set(parse_qs(location.query)) == {"from", "code", "state"}


def test_calls_never_hold_the_code_or_the_verifier(sim):
    verifier, challenge = pkce()
    code = code_for(sim, challenge)
    tokens = exchange(sim, code, verifier).json()
    recorded = repr(sim.calls)
    for secret in (code, verifier, tokens["access_token"], tokens["refresh_token"], sim.client_secret):
        assert secret not in recorded
    authorize_call, token_call = sim.calls
    assert authorize_call.status == 302 and authorize_call.query["state"] == "st-1"
    assert token_call.body["grant_type"] == "authorization_code" and token_call.body["code"] == "<redacted>"
