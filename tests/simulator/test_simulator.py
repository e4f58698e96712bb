"""Tests for the Constant Contact simulator (devkit/simulator.py), driven over real HTTP."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from devkit.simulator import ConstantContactSimulator

ROOT = Path(__file__).resolve().parents[2]
REMOVE = "/activities/contacts_taggings_remove"


@pytest.fixture
def sim(make_sim):
    return make_sim()


def api(sim: ConstantContactSimulator, token: str | None = None) -> requests.Session:
    session = requests.Session()
    session.headers["Accept"] = "application/json"
    session.headers["Authorization"] = f"Bearer {token or sim.issue_tokens()['access_token']}"
    return session


def create(session, sim, body=None, **kwargs) -> requests.Response:
    body = body if body is not None else {"source": {"contact_ids": ["c1", "c2", "c3"]}, "tag_ids": ["t1"]}
    return session.post(sim.base_url + REMOVE, json=body, timeout=5, **kwargs)


def refresh(sim, refresh_token, client_id="sim-client", client_secret="sim-secret") -> requests.Response:
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return requests.post(
        sim.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers={"Authorization": f"Basic {basic}"},
        timeout=5,
    )


# ----- creating activities ---------------------------------------------------------------
def test_create_returns_initialized_activity_tagging(sim):
    body = {"source": {"list_ids": ["L1"]}, "exclude": {"contact_ids": ["C9"]}, "tag_ids": ["T1"]}
    resp = create(api(sim), sim, body)
    assert resp.status_code == 201
    activity = resp.json()
    assert uuid.UUID(activity["activity_id"]).version == 4
    assert activity["state"] == "initialized"
    assert activity["percent_done"] == 0 and activity["activity_errors"] == [] and activity["status"] == {}
    assert activity["created_at"].endswith("Z") and activity["updated_at"].endswith("Z")
    assert activity["_links"] == {"self": {"href": f"/v3/activities/{activity['activity_id']}"}}
    stored = sim.activities[activity["activity_id"]]
    assert stored["body"] == body and stored["state"] == "initialized"
    assert sim.malformed == []


@pytest.mark.parametrize(
    "body",
    [
        {"source": {"contact_ids": [f"c{i}" for i in range(500)]}, "tag_ids": [f"t{i}" for i in range(50)]},
        {"source": {"list_ids": [f"L{i}" for i in range(50)]}, "tag_ids": ["t1"]},
        {"source": {"tag_ids": ["a-B-9"]}, "tag_ids": ["t1"]},
        {"source": {"all_active_contacts": True}, "exclude": {"contact_ids": ["c1"]}, "tag_ids": ["t1"]},
        {"source": {"new_subscriber": True}, "tag_ids": ["x" * 64]},
    ],
)
def test_valid_bodies_are_accepted(sim, body):
    assert create(api(sim), sim, body).status_code == 201
    assert sim.malformed == []


@pytest.mark.parametrize(
    "body",
    [
        {"source": {"list_ids": ["L1"], "exclude": ["C9"]}, "tag_ids": ["T1"]},  # guide's nested exclude
        {"source": {"all_active_contacts": "true"}, "tag_ids": ["T1"]},  # guide's string boolean
        {"source": {"all_active_contacts": False}, "tag_ids": ["T1"]},
        {"source": {"contact_ids": ["c1"], "list_ids": ["L1"]}, "tag_ids": ["T1"]},
        {"source": {}, "tag_ids": ["T1"]},
        {"tag_ids": ["T1"]},
        {"source": {"contact_ids": ["c1"]}},
        {"source": {"contact_ids": ["c1"]}, "tag_ids": []},
        {"source": {"contact_ids": []}, "tag_ids": ["T1"]},
        {"source": {"contact_ids": [f"c{i}" for i in range(501)]}, "tag_ids": ["T1"]},
        {"source": {"list_ids": [f"L{i}" for i in range(51)]}, "tag_ids": ["T1"]},
        {"source": {"contact_ids": ["c1"]}, "tag_ids": [f"t{i}" for i in range(51)]},
        {"source": {"contact_ids": ["c1", "c1"]}, "tag_ids": ["T1"]},
        {"source": {"contact_ids": ["c1"]}, "tag_ids": ["T1", "T1"]},
        {"source": {"contact_ids": ["../c1"]}, "tag_ids": ["T1"]},
        {"source": {"contact_ids": ["c1\n"]}, "tag_ids": ["T1"]},
        {"source": {"contact_ids": [7]}, "tag_ids": ["T1"]},
        {"source": {"contact_ids": ["c1"]}, "tag_ids": ["x" * 65]},
        {"source": {"contact_ids": ["c1"]}, "exclude": {"contact_ids": ["c2"]}, "tag_ids": ["T1"]},
        {"source": {"list_ids": ["L1"]}, "exclude": {"contact_ids": ["c2"], "list_ids": ["L2"]}, "tag_ids": ["T1"]},
        {"source": {"list_ids": ["L1"]}, "exclude": ["c2"], "tag_ids": ["T1"]},
        {"source": {"contact_ids": ["c1"]}, "tag_ids": ["T1"], "request_id": "r1"},
        ["not", "an", "object"],
    ],
)
def test_invalid_bodies_are_rejected_and_recorded(sim, body):
    resp = create(api(sim), sim, body)
    assert resp.status_code == 400
    errors = resp.json()
    assert isinstance(errors, list) and errors and all({"error_key", "error_message"} <= set(e) for e in errors)
    assert len(sim.malformed) == 1 and sim.malformed[0].startswith("POST /v3/activities/contacts_taggings_remove")
    assert sim.activities == {}


def test_content_type_and_json_are_required(sim):
    session = api(sim)
    body = json.dumps({"source": {"contact_ids": ["c1"]}, "tag_ids": ["T1"]})
    assert session.post(sim.base_url + REMOVE, data=body, timeout=5).status_code == 400  # no Content-Type
    for bad in (
        "{",
        '{"source": {"contact_ids": ["c1"]}, "source": {"list_ids": ["L1"]}, "tag_ids": ["T1"]}',
        '{"source": {"contact_ids": ["c1"]}, "tag_ids": ["T1"], "x": NaN}',
    ):
        resp = session.post(sim.base_url + REMOVE, data=bad, headers={"Content-Type": "application/json"}, timeout=5)
        assert resp.status_code == 400
    ok = session.post(
        sim.base_url + REMOVE, data=body, timeout=5, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 201
    assert len(sim.malformed) == 4


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/v3/activities/contacts_tagging_remove"),  # the guide's typo
        ("GET", "/v3/activities/contacts_taggings_remove"),
        ("DELETE", "/v3/activities/abc"),
        ("POST", "/v3/activities"),
        ("GET", "/v2/activities"),
        ("GET", "/oauth2/default/v1/token"),
    ],
)
def test_unknown_routes_are_404_and_malformed(sim, method, path):
    base = sim.base_url.removesuffix("/v3")
    resp = api(sim).request(method, base + path, json={}, timeout=5)
    assert resp.status_code == 404
    assert len(sim.malformed) == 1 and path in sim.malformed[0]


# ----- activity lifecycle ----------------------------------------------------------------
def test_lifecycle_by_reads(make_sim):
    sim = make_sim(reads_to_finish=2)
    session = api(sim)
    activity_id = create(session, sim).json()["activity_id"]
    url = f"{sim.base_url}/activities/{activity_id}"
    first = session.get(url, timeout=5).json()
    assert first["state"] == "processing" and first["percent_done"] == 50 and "started_at" in first
    second = session.get(url, timeout=5).json()
    assert second["state"] == "completed" and second["percent_done"] == 100
    assert second["status"] == {"items_total_count": 3, "items_completed_count": 3}
    assert second["activity_errors"] == [] and second["completed_at"].endswith("Z")
    assert session.get(url, timeout=5).json() == second  # terminal states stay put
    assert sim.activities[activity_id]["state"] == "completed"


def test_lifecycle_by_time(make_sim):
    sim = make_sim(seconds_to_finish=0.6)
    session = api(sim)
    activity_id = create(session, sim).json()["activity_id"]
    url = f"{sim.base_url}/activities/{activity_id}"
    assert session.get(url, timeout=5).json()["state"] == "initialized"
    time.sleep(0.3)
    assert session.get(url, timeout=5).json()["state"] == "processing"
    time.sleep(0.35)
    assert session.get(url, timeout=5).json()["state"] == "completed"


@pytest.mark.parametrize(
    "source,total",
    [
        ({"contact_ids": ["a", "b"]}, 2),
        ({"list_ids": ["L1", "L2"]}, 20),
        ({"tag_ids": ["x"]}, 10),
        ({"all_active_contacts": True}, 1000),
    ],
)
def test_item_counts_are_deterministic(make_sim, source, total):
    sim = make_sim(reads_to_finish=1)
    session = api(sim)
    activity_id = create(session, sim, {"source": source, "tag_ids": ["t1"]}).json()["activity_id"]
    status = session.get(f"{sim.base_url}/activities/{activity_id}", timeout=5).json()["status"]
    assert status == {"items_total_count": total, "items_completed_count": total}


@pytest.mark.parametrize("outcome", ["failed", "cancelled", "timed_out"])
def test_set_outcome(make_sim, outcome):
    sim = make_sim(reads_to_finish=1)
    sim.set_outcome("bad-tag", outcome)
    session = api(sim)
    body = {"source": {"contact_ids": ["a", "b", "c", "d"]}, "tag_ids": ["t1", "bad-tag"]}
    activity_id = create(session, sim, body).json()["activity_id"]
    other_id = create(session, sim).json()["activity_id"]
    activity = session.get(f"{sim.base_url}/activities/{activity_id}", timeout=5).json()
    assert activity["state"] == outcome and "completed_at" in activity
    assert activity["status"]["items_completed_count"] < activity["status"]["items_total_count"] == 4
    if outcome == "failed":
        assert activity["activity_errors"] and all(isinstance(e, str) for e in activity["activity_errors"])
    assert session.get(f"{sim.base_url}/activities/{other_id}", timeout=5).json()["state"] == "completed"


def test_forget_activity_and_unknown_ids_are_404(sim):
    session = api(sim)
    activity_id = create(session, sim).json()["activity_id"]
    sim.forget_activity(activity_id)
    resp = session.get(f"{sim.base_url}/activities/{activity_id}", timeout=5)
    assert resp.status_code == 404 and resp.json()[0]["error_key"] == "not_found"
    assert session.get(f"{sim.base_url}/activities", timeout=5).json()["activities"] == []
    assert session.get(f"{sim.base_url}/activities/{uuid.uuid4()}", timeout=5).status_code == 404
    assert sim.malformed == []


# ----- the collection --------------------------------------------------------------------
def test_collection_pages_newest_first_with_foreign_activities(make_sim):
    sim = make_sim(reads_to_finish=2)
    session = api(sim)
    ours = [create(session, sim).json()["activity_id"] for _ in range(4)]
    sim.add_foreign_activities(3)
    ours.append(create(session, sim).json()["activity_id"])
    url, pages, seen = f"{sim.base_url}/activities?limit=3", 0, []
    while url:
        body = session.get(url, timeout=5).json()
        pages += 1
        seen += body["activities"]
        nxt = body.get("_links", {}).get("next")
        url = sim.base_url.removesuffix("/v3") + nxt["href"] if nxt else None
        if nxt:
            assert nxt["href"].startswith("/v3/activities?") and "limit=3" in nxt["href"]
    assert pages == 3 and len(seen) == 8
    ids = [a["activity_id"] for a in seen]
    assert ids[0] == ours[-1] and ids[-4:] == ours[3::-1]  # newest first
    foreign = [a for a in seen if a["activity_id"] not in ours]
    assert len(foreign) == 3 and all(a["state"] == "completed" and "person_count" in a["status"] for a in foreign)
    assert all(a["state"] == "processing" for a in seen if a["activity_id"] in ours)  # one read each
    assert sim.malformed == []


def test_collection_state_filter_and_default_limit(make_sim):
    sim = make_sim(reads_to_finish=1)
    session = api(sim)
    ids = {create(session, sim).json()["activity_id"] for _ in range(55)}
    assert session.get(f"{sim.base_url}/activities?state=processing", timeout=5).json()["activities"] == []
    first = session.get(f"{sim.base_url}/activities?state=completed", timeout=5).json()
    assert len(first["activities"]) == 50 and "state=completed" in first["_links"]["next"]["href"]
    rest = session.get(sim.base_url.removesuffix("/v3") + first["_links"]["next"]["href"], timeout=5).json()
    assert len(rest["activities"]) == 5 and "_links" not in rest
    assert {a["activity_id"] for a in first["activities"] + rest["activities"]} == ids
    assert sim.malformed == []


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=abc",
        "limit=-1",
        "state=initialized",
        "state=done",
        "type=tagging",
        "next=garbage",
        "limit=5&limit=6",
    ],
)
def test_collection_rejects_bad_queries(sim, query):
    resp = api(sim).get(f"{sim.base_url}/activities?{query}", timeout=5)
    assert resp.status_code == 400 and isinstance(resp.json(), list)
    assert len(sim.malformed) == 1


# ----- limits ----------------------------------------------------------------------------
def test_rate_limit_throttles_across_endpoints(make_sim):
    sim = make_sim(rate_limit_per_second=4)
    session = api(sim)
    statuses = [create(session, sim).status_code for _ in range(2)]
    statuses += [session.get(f"{sim.base_url}/activities", timeout=5).status_code for _ in range(3)]
    assert statuses == [201, 201, 200, 200, 429]
    throttled = session.get(f"{sim.base_url}/activities", timeout=5)
    assert throttled.status_code == 429 and throttled.json() == {
        "error_key": "throttled",
        "error_message": "Too Many Requests",
    }
    assert sim.count(status=429) == 2
    time.sleep(1.05)
    assert session.get(f"{sim.base_url}/activities", timeout=5).status_code == 200


def test_an_injected_clock_drives_arrival_times_and_the_rate_window(make_sim):
    now = [1_900_000_000.0]
    sim = make_sim(rate_limit_per_second=4, clock=lambda: now[0])
    session = api(sim)
    statuses = []
    for step in range(5):  # 0, 0.2, ... 0.8 s of the injected clock: the fifth is over 4 in one second
        now[0] = 1_900_000_000.0 + step * 0.2
        statuses.append(create(session, sim).status_code)
    assert statuses == [201] * 4 + [429]
    now[0] = 1_900_000_001.0  # the first call left the window, whatever the wall clock says
    assert create(session, sim).status_code == 201
    assert [call.at for call in sim.calls][:2] == [1_900_000_000.0, 1_900_000_000.2]


def test_daily_quota(make_sim):
    sim = make_sim(daily_quota=3)
    session = api(sim)
    assert [session.get(f"{sim.base_url}/activities", timeout=5).status_code for _ in range(4)] == [200] * 3 + [429]
    assert session.get(f"{sim.base_url}/activities", timeout=5).json()["error_key"] == "quota_exceeded"
    other = make_sim()
    other.exhaust_quota()
    resp = create(api(other), other)
    assert resp.status_code == 429
    assert resp.json() == {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}
    assert other.activities == {}


# ----- authentication --------------------------------------------------------------------
def test_rotating_refresh_tokens(sim):
    sim.token_rate_limit_per_second = None
    tokens = sim.issue_tokens()
    assert {"access_token", "refresh_token", "client_id", "client_secret", "expires_at"} <= set(tokens)
    assert tokens["expires_at"] > time.time() + 3600
    resp = refresh(sim, tokens["refresh_token"])
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400 and body["scope"]
    assert body["refresh_token"] != tokens["refresh_token"] and body["access_token"] != tokens["access_token"]
    assert len(body["access_token"]) >= 32
    assert create(api(sim, body["access_token"]), sim).status_code == 201
    assert create(api(sim, tokens["access_token"]), sim).status_code == 201  # old one still valid
    reused = refresh(sim, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert refresh(sim, body["refresh_token"]).status_code == 200
    assert (sim.token_refreshes, sim.invalid_grants) == (2, 1)
    assert sim.malformed == []


def test_long_lived_refresh_tokens_and_ttl(make_sim):
    sim = make_sim(rotating_refresh_tokens=False, access_token_ttl=0.3)
    sim.token_rate_limit_per_second = None
    tokens = sim.issue_tokens()
    first = refresh(sim, tokens["refresh_token"]).json()
    assert first["refresh_token"] == tokens["refresh_token"] and first["expires_in"] == 0.3
    assert refresh(sim, tokens["refresh_token"]).status_code == 200
    session = api(sim, first["access_token"])
    assert session.get(f"{sim.base_url}/activities", timeout=5).status_code == 200
    time.sleep(0.35)
    assert session.get(f"{sim.base_url}/activities", timeout=5).status_code == 401


def test_token_endpoint_errors_and_rate_limit(sim):
    tokens = sim.issue_tokens()
    wrong = refresh(sim, tokens["refresh_token"], client_secret="nope")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    limited = refresh(sim, tokens["refresh_token"])
    assert limited.status_code == 429 and limited.json()["error"] == "too_many_requests"
    sim.token_rate_limit_per_second = None
    unknown = refresh(sim, "not-a-token")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
    bad_grant = requests.post(
        sim.token_url, data={"grant_type": "password"}, auth=("sim-client", "sim-secret"), timeout=5
    )
    assert bad_grant.status_code == 400 and len(sim.malformed) == 1
    assert sim.invalid_grants == 1 and sim.token_refreshes == 0


def test_expired_and_missing_access_tokens(sim):
    session = api(sim)
    assert create(session, sim).status_code == 201
    sim.expire_access_tokens()
    resp = create(session, sim)
    assert resp.status_code == 401 and resp.json() == {"error_key": "unauthorized", "error_message": "Unauthorized"}
    assert sim.malformed == []
    anonymous = requests.get(f"{sim.base_url}/activities", timeout=5)
    assert anonymous.status_code == 401 and len(sim.malformed) == 1
    assert len(sim.activities) == 1


def test_calls_never_hold_tokens(sim):
    sim.token_rate_limit_per_second = None
    tokens = sim.issue_tokens()
    new = refresh(sim, tokens["refresh_token"]).json()
    create(api(sim, new["access_token"]), sim)
    recorded = repr(sim.calls)
    for secret in (tokens["refresh_token"], new["refresh_token"], new["access_token"], tokens["client_secret"]):
        assert secret not in recorded
    token_call = sim.calls[0]
    assert token_call.path == "/oauth2/default/v1/token" and token_call.body["grant_type"] == "refresh_token"


# ----- injected faults -------------------------------------------------------------------
def test_fail_next_forces_responses_before_state_changes(sim):
    session = api(sim)
    sim.fail_next("POST", "/v3/activities/contacts_taggings_remove", 503, count=2)
    sim.fail_next("GET", "/v3/activities", 429)
    assert create(session, sim).status_code == 503
    assert create(session, sim).status_code == 503
    assert sim.activities == {}
    throttled = session.get(f"{sim.base_url}/activities", timeout=5)
    assert throttled.status_code == 429 and throttled.json()["error_key"] == "throttled"
    assert create(session, sim).status_code == 201
    sim.fail_next("get", "/v3/activities", 500, body={"custom": True})
    assert session.get(f"{sim.base_url}/activities", timeout=5).json() == {"custom": True}
    assert sim.count("POST", "/v3/activities/contacts_taggings_remove") == 3
    assert sim.count(status=503) == 2 and sim.malformed == []


def test_fail_next_drop_and_delay(sim):
    session = api(sim)
    sim.fail_next("POST", "/v3/activities", 201, drop=True)
    with pytest.raises(requests.ConnectionError):
        create(session, sim)
    sim.fail_next("GET", "/v3/activities/", 200, body={}, delay=0.5)
    with pytest.raises(requests.ReadTimeout):
        session.get(f"{sim.base_url}/activities/abc", timeout=0.2)
    assert sim.activities == {}
    assert create(session, sim).status_code == 201
    sim.fail_next("POST", "/oauth2", 503)
    assert refresh(sim, sim.issue_tokens()["refresh_token"]).status_code == 503
    assert sim.count(status=0) == 1


def test_random_faults_are_seeded(make_sim):
    def statuses(seed):
        sim = make_sim(fault_rate=0.5, seed=seed)
        sim.slow_response_seconds = 0.01
        session = api(sim)
        return [session.get(f"{sim.base_url}/activities", timeout=5).status_code for _ in range(60)]

    first = statuses(7)
    assert first == statuses(7)
    assert {200, 429, 500, 503} <= set(first)


def test_latency(make_sim):
    sim = make_sim(latency=0.1)
    started = time.monotonic()
    api(sim).get(f"{sim.base_url}/activities", timeout=5)
    assert time.monotonic() - started >= 0.1


# ----- observations and process ----------------------------------------------------------
def test_count_reset_and_concurrency(sim):
    session_tokens = sim.issue_tokens()["access_token"]

    def worker():
        session = api(sim, session_tokens)
        for _ in range(5):
            assert create(session, sim).status_code == 201

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sim.activities) == 40 and sim.count("POST", status=201) == 40
    call = sim.calls[0]
    assert call.method == "POST" and call.query == {} and call.body["tag_ids"] == ["t1"] and call.at > 0
    sim.reset_counters()
    assert sim.calls == [] and sim.count() == 0 and len(sim.activities) == 40


def test_context_manager_stops_serving():
    with ConstantContactSimulator() as sim:
        url = sim.base_url
        assert requests.get(f"{url}/activities", timeout=5).status_code == 401
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/activities", timeout=1)


def test_cli_prints_urls_and_tokens():
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkit.simulator", "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        info = json.loads(proc.stdout.readline())
        resp = requests.get(
            f"{info['base_url']}/activities",
            timeout=5,
            headers={"Authorization": f"Bearer {info['token_secret']['access_token']}"},
        )
        assert resp.status_code == 200 and info["token_url"].endswith("/oauth2/default/v1/token")
    finally:
        proc.terminate()
        proc.wait(timeout=5)
