"""The simulator's contact and tag controls, what a completed tag removal does to the contacts, and the gate
(authentication, rate limit, quota, faults) on the contact and tag reads, over real HTTP."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.simulator.contact_helpers import api, get, listed, remove_tags


# ----- the gate ---------------------------------------------------------------------------
def test_the_gate_applies_and_calls_are_counted(make_sim):
    sim = make_sim(rate_limit_per_second=4, daily_quota=8)
    session = api(sim)
    statuses = [get(session, sim, path).status_code for path in ("/contacts", "/contact_tags") * 3]
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert get(session, sim, "/contacts").json() == {"error_key": "throttled", "error_message": "Too Many Requests"}
    time.sleep(1.05)
    assert get(session, sim, "/contact_tags").status_code == 200
    quota = get(session, sim, "/contacts")
    assert quota.status_code == 429 and quota.json()["error_key"] == "quota_exceeded"
    assert sim.count("GET", "/v3/contacts") == 5 and sim.count("GET", "/v3/contact_tags") == 4
    assert sim.count("GET", "/v3/contacts", status=429) == 3
    assert requests.get(f"{sim.base_url}/contact_tags", timeout=5).status_code == 401
    assert sim.count("GET", "/v3/contact_tags", status=401) == 1 and len(sim.malformed) == 1


def test_faults_and_expired_tokens(sim):
    session = api(sim)
    sim.fail_next("GET", "/v3/contacts", 503)
    sim.fail_next("GET", "/v3/contact_tags", 500, body={"custom": True})
    assert get(session, sim, "/contacts", limit="3").status_code == 503
    assert get(session, sim, "/contact_tags").json() == {"custom": True}
    assert get(session, sim, "/contacts").status_code == 200
    sim.exhaust_quota()
    assert get(session, sim, "/contacts").json()["error_key"] == "quota_exceeded"
    sim.renew_quota()
    sim.expire_access_tokens()
    assert get(session, sim, "/contact_tags").status_code == 401
    assert sim.calls[0].query == {"limit": "3"} and sim.count("GET", "/v3/contacts", status=503) == 1


# ----- what a completed tag removal does ------------------------------------------------
@pytest.mark.parametrize(
    "source,exclude,untagged",
    [
        ({"contact_ids": ["a", "c", "x", "unknown-contact"]}, None, {"a"}),
        ({"list_ids": ["L1"]}, None, {"a", "b", "u"}),
        ({"list_ids": ["L1", "L2"]}, ["b"], {"a", "u"}),
        ({"tag_ids": ["<silver>"]}, None, {"a"}),
        ({"all_active_contacts": True}, ["a"], {"b"}),
        ({"new_subscriber": True}, None, {"a", "b"}),
    ],
)
def test_a_completed_removal_takes_the_tags_off(make_sim, clock, source, exclude, untagged):
    sim = make_sim(clock=lambda: clock[0], reads_to_finish=2)
    gold, silver = sim.add_tag("Gold"), sim.add_tag("Silver")
    people = {
        "a": sim.add_contact("a@example.com", list_ids=["L1"], tag_ids=[gold, silver]),
        "b": sim.add_contact("b@example.com", list_ids=["L1", "L2"], tag_ids=[gold]),
        "c": sim.add_contact("c@example.com", list_ids=["L2"], tag_ids=[silver]),
        "u": sim.add_contact("u@example.com", list_ids=["L1"], tag_ids=[gold], permission="unsubscribed"),
        "x": sim.add_contact("x@example.com", list_ids=["L1"], tag_ids=[gold]),
    }
    sim.delete_contact(people["x"])
    resolve = {"<silver>": silver, **people}
    body: dict = {
        "source": {k: [resolve.get(v, v) for v in vs] if isinstance(vs, list) else vs for k, vs in source.items()}
    }
    if exclude:
        body["exclude"] = {"contact_ids": [people[p] for p in exclude]}
    body["tag_ids"] = [gold]
    session = api(sim)
    before = sim.contacts
    clock[0] += 10
    activity_id = remove_tags(session, sim, body)
    url = f"{sim.base_url}/activities/{activity_id}"
    assert session.get(url, timeout=5).json()["state"] == "processing"
    assert sim.contacts == before  # nothing happens before it completes
    assert session.get(url, timeout=5).json()["state"] == "completed"
    after = sim.contacts
    changed = {name for name, cid in people.items() if after[cid] != before[cid]}
    assert changed == untagged
    for name in untagged:
        contact = after[people[name]]
        assert gold not in contact["taggings"] and contact["updated_at"].startswith("2030-03-17T17:46:50.00000")
        assert contact["taggings"] == [t for t in before[people[name]]["taggings"] if t != gold]
    synced = listed(session, sim, updated_after="2030-03-17T17:46:45Z", status="all")
    assert {c["contact_id"] for c in synced} == {people[name] for name in untagged}
    counts = {
        t["tag_id"]: t["contacts_count"]
        for t in get(session, sim, "/contact_tags", include_count="true").json()["tags"]
    }
    assert counts[gold] == 3 - len(untagged & {"a", "b", "u"})
    assert sim.malformed == []


def test_a_failed_removal_leaves_the_tags(make_sim):
    sim = make_sim(reads_to_finish=1)
    gold = sim.add_tag("Gold")
    carrier = sim.add_contact("a@example.com", tag_ids=[gold])
    sim.set_outcome(gold, "failed")
    session = api(sim)
    before = sim.contacts
    activity_id = remove_tags(session, sim, {"source": {"contact_ids": [carrier]}, "tag_ids": [gold]})
    assert session.get(f"{sim.base_url}/activities/{activity_id}", timeout=5).json()["state"] == "failed"
    assert sim.contacts == before


def test_a_removal_that_finishes_by_time_untags_without_being_read(make_sim, clock):
    sim = make_sim(clock=lambda: clock[0], seconds_to_finish=60)
    gold = sim.add_tag("Gold")
    carrier = sim.add_contact("a@example.com", tag_ids=[gold])
    session = api(sim)
    remove_tags(session, sim, {"source": {"tag_ids": [gold]}, "tag_ids": [gold]})
    clock[0] += 30
    assert listed(session, sim, include="taggings")[0]["taggings"] == [gold]
    clock[0] += 31
    untagged = listed(session, sim, include="taggings")  # nobody read the activity
    assert untagged[0]["taggings"] == [] and untagged[0]["updated_at"] == "2030-03-17T17:47:41.000000Z"
    assert get(session, sim, "/contact_tags", include_count="true").json()["tags"][0]["contacts_count"] == 0
    assert sim.contacts[carrier]["taggings"] == []


def test_a_listing_that_only_peeks_at_an_activity_does_not_untag(make_sim):
    sim = make_sim(reads_to_finish=1)
    gold, silver = sim.add_tag("Gold"), sim.add_tag("Silver")
    carrier = sim.add_contact("a@example.com", tag_ids=[gold, silver])
    session = api(sim)
    older = remove_tags(session, sim, {"source": {"contact_ids": [carrier]}, "tag_ids": [gold]})
    remove_tags(session, sim, {"source": {"contact_ids": [carrier]}, "tag_ids": [silver]})
    newest = session.get(f"{sim.base_url}/activities", params={"limit": 1}, timeout=5).json()
    assert newest["activities"][0]["state"] == "completed"  # the older one was looked at past the page only
    assert sim.contacts[carrier]["taggings"] == [gold] and sim.activities[older]["state"] == "initialized"
    assert session.get(f"{sim.base_url}/activities/{older}", timeout=5).json()["state"] == "completed"
    assert sim.contacts[carrier]["taggings"] == []


# ----- the controls -----------------------------------------------------------------------
def test_tag_controls(sim):
    gold = sim.add_tag("Gold")
    with pytest.raises(ValueError):
        sim.add_tag("gOLD")
    with pytest.raises(ValueError):
        sim.add_tag("")
    with pytest.raises(ValueError):
        sim.add_tag("Other", tag_id=gold)
    assert sim.add_tag("Silver", tag_id="t-silver") == "t-silver"
    assert uuid.UUID(gold).version == 4
    assert sim.tags == {gold: "Gold", "t-silver": "Silver"}
    carrier = sim.add_contact("a@example.com", tag_ids=[gold, "t-silver"])
    before = sim.contacts[carrier]["updated_at"]
    sim.delete_tag(gold)
    assert sim.tags == {"t-silver": "Silver"}
    after = sim.contacts[carrier]
    assert after["taggings"] == ["t-silver"] and after["updated_at"] > before
    with pytest.raises(KeyError):
        sim.delete_tag(gold)
    assert sim.add_tag("GOLD") != gold  # the name is free again


def test_contact_controls(sim, clock):
    gold = sim.add_tag("Gold")
    cid = sim.add_contact("Someone@Example.com", contact_id="c-1", list_ids=["L1", "L1"], tag_ids=[gold])
    assert cid == "c-1" and sim.contacts[cid]["list_memberships"] == ["L1"]
    for bad in (
        lambda: sim.add_contact("someone@example.COM"),  # unique ignoring case
        lambda: sim.add_contact("new@example.com", contact_id="c-1"),
        lambda: sim.add_contact("new@example.com", tag_ids=["no-such-tag"]),
        lambda: sim.add_contact("new@example.com", permission="maybe"),
        lambda: sim.add_contact("not-an-address"),
        lambda: sim.add_contact("new@example.com", list_ids=[f"L{n}" for n in range(51)]),
        lambda: sim.update_contact(cid, permission="maybe"),
    ):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(KeyError):
        sim.update_contact("nobody", list_ids=[])
    stamps = [sim.contacts[cid]["updated_at"]]
    sim.update_contact(cid, email="SOMEONE@example.com", list_ids=["L2"], tag_ids=[], permission="explicit")
    changed = sim.contacts[cid]
    assert changed["email_address"]["address"] == "SOMEONE@example.com" and changed["list_memberships"] == ["L2"]
    assert changed["taggings"] == [] and changed["email_address"]["permission_to_send"] == "explicit"
    stamps.append(changed["updated_at"])
    sim.delete_contact(cid)
    stamps.append(sim.contacts[cid]["updated_at"])
    assert stamps == sorted(set(stamps)) and len(stamps) == 3  # strictly increasing on a frozen clock
    with pytest.raises(ValueError):
        sim.delete_contact(cid)
    assert sim.contacts[cid]["deleted_at"] == "2030-03-17"
    assert sim.seed_contacts(2, domain="example.org")[0][0] == "sim-000001@example.org"
    assert [email for email, _ in sim.seed_contacts(1, domain="example.org")] == ["sim-000003@example.org"]


def test_seeding_100k_contacts_is_fast(sim):
    gold = sim.add_tag("Gold")
    started = time.monotonic()
    seeded = sim.seed_contacts(100_000, list_ids=["L1"], tag_ids=[gold])
    assert time.monotonic() - started < 10  # about a second on a busy laptop
    assert len({cid for _, cid in seeded}) == 100_000 and uuid.UUID(seeded[0][1]).version == 4
    session = api(sim)
    started = time.monotonic()
    page = get(session, sim, "/contacts", limit="500", include_count="true", tags=gold).json()
    assert len(page["contacts"]) == 500 and page["contacts_count"] == 100_000
    assert get(session, sim, "/contact_tags", include_count="true").json()["tags"][0]["contacts_count"] == 100_000
    assert time.monotonic() - started < 5
