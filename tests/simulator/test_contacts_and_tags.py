"""The simulator's contact and tag reads over real HTTP: `GET /v3/contacts` and `GET /v3/contact_tags`, their
shapes (the OpenAPI spec's), paging, filters and query validation."""

from __future__ import annotations

import base64
import uuid
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest

from tests.simulator.contact_helpers import (
    CONTACTS_PAGE,
    DATE_TIME,
    STAMP,
    TAGS_PAGE,
    api,
    conforms,
    follow,
    get,
    ids,
    listed,
    pages,
)


def test_the_format_checks_are_live():
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    for schema, bad in ((DATE_TIME, "2030-03-17 17:46"), ({"type": "string", "format": "uuid"}, "nope")):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema, format_checker=checker).validate(bad)


def test_shapes_follow_the_openapi_spec(sim, clock):
    gold = sim.add_tag("Gold")
    lists = [str(uuid.uuid4()) for _ in range(2)]
    named = sim.add_contact("Debora.Lang@example.com", list_ids=lists, tag_ids=[gold], first_name="Debora")
    blank = sim.add_contact("blank@example.com", first_name="", last_name="", permission="explicit")
    clock[0] += 90_000  # a day later
    gone = sim.add_contact("gone@example.com", tag_ids=[gold])
    sim.delete_contact(gone)
    sim.seed_contacts(3)
    session = api(sim)
    everything = "custom_fields,list_memberships,phone_numbers,street_addresses,taggings,notes"
    for params in ({}, {"include": everything, "status": "all", "include_count": "true", "limit": "2"}):
        for body in pages(session, sim, "/contacts", **params):
            conforms(body, CONTACTS_PAGE)
    contacts = {c["contact_id"]: c for c in listed(session, sim, status="all", include="list_memberships,taggings")}
    assert contacts[named] == {
        "contact_id": named,
        "email_address": {
            "address": "Debora.Lang@example.com",  # as given
            "permission_to_send": "implicit",
            "created_at": "2030-03-17T17:46:40.000000Z",
            "updated_at": "2030-03-17T17:46:40.000000Z",
        },
        "first_name": "Debora",
        "create_source": "Account",
        "update_source": "Account",
        "created_at": "2030-03-17T17:46:40.000000Z",
        "updated_at": "2030-03-17T17:46:40.000000Z",
        "list_memberships": lists,
        "taggings": [gold],
    }
    deleted = contacts[gone]
    assert deleted["deleted_at"] == "2030-03-18" and deleted["updated_at"] == "2030-03-18T18:46:40.000001Z"
    assert deleted["email_address"]["opt_out_source"] == "Account"
    for contact in contacts.values():
        assert STAMP.fullmatch(contact["created_at"]) and STAMP.fullmatch(contact["updated_at"])
    assert contacts[blank]["first_name"] == contacts[blank]["last_name"] == ""
    assert "last_name" not in contacts[named]
    without = listed(session, sim)[0]
    assert "list_memberships" not in without and "taggings" not in without and "deleted_at" not in without
    sim.add_tag("Silver")
    for params in ({}, {"include_count": "true"}, {"limit": "1"}):
        for body in pages(session, sim, "/contact_tags", **params):
            conforms(body, TAGS_PAGE)
    tag = get(session, sim, "/contact_tags").json()["tags"][0]
    assert tag == {
        "tag_id": gold,
        "name": "Gold",
        "created_at": "2030-03-17T17:46:40.000000Z",
        "updated_at": "2030-03-17T17:46:40.000000Z",
        "tag_source": "Account",
    }
    assert sim.malformed == []


# ----- GET /v3/contact_tags ---------------------------------------------------------------
def test_tags_page_in_creation_order_with_counts(sim):
    tag_ids = [sim.add_tag(f"Tag {n}") for n in range(7)]
    sim.seed_contacts(4, tag_ids=tag_ids[:2])
    gone = sim.add_contact("gone@example.com", tag_ids=[tag_ids[0]])
    sim.delete_contact(gone)  # deleted contacts do not count
    session = api(sim)
    bodies = pages(session, sim, "/contact_tags", limit="3", include_count="true")
    assert [len(b["tags"]) for b in bodies] == [3, 3, 1]
    assert [t["tag_id"] for b in bodies for t in b["tags"]] == tag_ids
    assert [t["contacts_count"] for b in bodies for t in b["tags"]] == [4, 4, 0, 0, 0, 0, 0]
    for body in bodies[:-1]:
        assert body["_links"]["next"]["href"].startswith("/v3/contact_tags?limit=3&cursor=")
    one_page = get(session, sim, "/contact_tags").json()
    assert [t["tag_id"] for t in one_page["tags"]] == tag_ids and "_links" not in one_page
    assert all("contacts_count" not in t for t in one_page["tags"])
    assert "contacts_count" not in get(session, sim, "/contact_tags", include_count="false").json()["tags"][0]
    cursor_href = pages(session, sim, "/contact_tags", limit="5")[0]["_links"]["next"]["href"]
    sim.add_tag("Tag 7")  # a link followed later sees what was added since
    assert [t["name"] for t in follow(session, sim, cursor_href).json()["tags"]] == ["Tag 5", "Tag 6", "Tag 7"]
    assert sim.malformed == []


def test_tags_page_at_the_maximum_limit(sim):
    tag_ids = [sim.add_tag(f"t{n:04d}") for n in range(1001)]
    bodies = pages(api(sim), sim, "/contact_tags", limit="500")
    assert [len(b["tags"]) for b in bodies] == [500, 500, 1]
    assert [t["tag_id"] for b in bodies for t in b["tags"]] == tag_ids


# ----- GET /v3/contacts: paging -----------------------------------------------------------
def test_contacts_page_at_the_maximum_limit_with_counts(sim):
    seeded = sim.seed_contacts(1234)
    session = api(sim)
    bodies = pages(session, sim, "/contacts", limit="500", include_count="true")
    assert [len(b["contacts"]) for b in bodies] == [500, 500, 234]
    assert [b["contacts_count"] for b in bodies] == [1234] * 3
    assert [c["contact_id"] for b in bodies for c in b["contacts"]] == [cid for _, cid in seeded]
    for body in bodies[:-1]:
        href = body["_links"]["next"]["href"]
        assert href.startswith("/v3/contacts?cursor=") and href.endswith("&limit=500")
    default = get(session, sim, "/contacts").json()
    assert len(default["contacts"]) == 50 and "contacts_count" not in default and "_links" in default
    assert sim.malformed == []


@pytest.mark.parametrize("limit", [1, 7, 20, 21])
def test_contacts_page_with_small_limits(sim, limit):
    seeded = [cid for _, cid in sim.seed_contacts(20)]
    bodies = pages(api(sim), sim, "/contacts", limit=str(limit))
    assert [c["contact_id"] for b in bodies for c in b["contacts"]] == seeded
    assert all(len(b["contacts"]) == limit for b in bodies[:-1]) and 1 <= len(bodies[-1]["contacts"]) <= limit
    assert "_links" not in bodies[-1]


def test_next_links_carry_the_query_and_stay_valid(sim, clock):
    gold = sim.add_tag("Gold")
    tagged = [cid for _, cid in sim.seed_contacts(6, tag_ids=[gold])]
    sim.seed_contacts(6)
    session = api(sim)
    first = get(session, sim, "/contacts", tags=gold, include="taggings", include_count="true", limit="4").json()
    assert ids(first["contacts"]) == tagged[:4] and first["contacts_count"] == 6
    href = first["_links"]["next"]["href"]
    link = parse_qs(urlsplit(href).query)
    assert urlsplit(href).path == "/v3/contacts" and set(link) == {"cursor", "limit"}  # the query is in the cursor
    cursor = link["cursor"][0]
    assert "next=" in base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    clock[0] += 1
    sim.update_contact(tagged[0], list_ids=["L9"])  # seen already: moves to the end, so it comes again
    later = follow(session, sim, href).json()
    assert ids(later["contacts"]) == [*tagged[4:], tagged[0]]
    assert later["contacts_count"] == 6 and all(c["taggings"] == [gold] for c in later["contacts"])
    smaller = get(session, sim, "/contacts", cursor=cursor, limit="1").json()
    assert ids(smaller["contacts"]) == tagged[4:5] and "_links" in smaller  # a limit beside the cursor wins
    assert sim.malformed == []
    forged = base64.urlsafe_b64encode(b"limit=4&next=12:../x").decode()
    for bad in ({"cursor": cursor, "tags": gold}, {"cursor": forged}, {"cursor": "bm9wZQ"}, {"cursor": "!!"}):
        assert get(session, sim, "/contacts", **bad).status_code == 400
    assert len(sim.malformed) == 4


# ----- GET /v3/contacts: filters ----------------------------------------------------------
def test_status_default_all_and_deleted(sim):
    active = sim.add_contact("implicit@example.com")
    explicit = sim.add_contact("explicit@example.com", permission="explicit")
    unsubscribed = sim.add_contact("unsub@example.com", permission="unsubscribed")
    pending = sim.add_contact("pending@example.com", permission="pending_confirmation")
    gone = sim.add_contact("gone@example.com", permission="explicit")
    sim.delete_contact(gone)
    session = api(sim)
    assert ids(listed(session, sim)) == [active, explicit, unsubscribed, pending]
    assert ids(listed(session, sim, status="all")) == [active, explicit, unsubscribed, pending, gone]
    assert ids(listed(session, sim, status="deleted")) == [gone]
    assert ids(listed(session, sim, status="active")) == [active, explicit]
    assert ids(listed(session, sim, status="unsubscribed,pending_confirmation")) == [unsubscribed, pending]
    assert ids(listed(session, sim, status="temp_hold,not_set")) == []
    assert get(session, sim, "/contacts", status="all", include_count="true").json()["contacts_count"] == 5
    assert get(session, sim, "/contacts", include_count="true").json()["contacts_count"] == 4
    assert sim.malformed == []


def test_email_is_an_exact_case_insensitive_match(sim):
    target = sim.add_contact("Mixed.Case+tag@Example.com")
    sim.add_contact("mixed.case@example.com")
    gone = sim.add_contact("gone@example.com")
    sim.delete_contact(gone)
    session = api(sim)
    for email in ("mixed.case+tag@example.com", "  MIXED.CASE+TAG@EXAMPLE.COM "):
        found = listed(session, sim, email=email)
        assert ids(found) == [target] and found[0]["email_address"]["address"] == "Mixed.Case+tag@Example.com"
    assert listed(session, sim, email="mixed.case") == [] and listed(session, sim, email="example.com") == []
    assert listed(session, sim, email="gone@example.com") == []
    assert ids(listed(session, sim, email="GONE@example.com", status="all")) == [gone]
    assert get(session, sim, "/contacts", email="nobody@x.io", include_count="true").json() == {
        "contacts": [],
        "contacts_count": 0,
    }
    assert sim.malformed == []


def test_lists_and_tags_filters_combine_with_and(sim):
    gold, silver, bronze = (sim.add_tag(name) for name in ("Gold", "Silver", "Bronze"))
    a = sim.add_contact("a@example.com", list_ids=["L1"], tag_ids=[gold])
    b = sim.add_contact("b@example.com", list_ids=["L1", "L2"], tag_ids=[silver])
    c = sim.add_contact("c@example.com", list_ids=["L3"], tag_ids=[gold, silver], permission="unsubscribed")
    d = sim.add_contact("d@example.com", list_ids=["L2"], tag_ids=[gold])
    sim.delete_contact(d)
    session = api(sim)
    assert ids(listed(session, sim, lists="L1")) == [a, b]
    assert ids(listed(session, sim, lists="L2,L3")) == [b, c]  # a member of any
    assert ids(listed(session, sim, tags=gold)) == [a, c]
    assert ids(listed(session, sim, tags=f"{silver},{bronze}")) == [b, c]  # carries any
    assert ids(listed(session, sim, tags=bronze)) == []
    assert ids(listed(session, sim, lists="L1,L3", tags=gold)) == [a, c]
    assert ids(listed(session, sim, lists="L1,L3", tags=gold, status="active")) == [a]
    assert ids(listed(session, sim, lists="L2", status="all")) == [b, d]
    counted = get(session, sim, "/contacts", tags=gold, include_count="true", limit="1").json()
    assert counted["contacts_count"] == 2 and len(counted["contacts"]) == 1
    assert sim.malformed == []


@pytest.mark.parametrize("name,cap", [("lists", 25), ("tags", 50)])
def test_lists_and_tags_filters_are_capped(sim, name, cap):
    session = api(sim)
    at_cap = ",".join(f"id-{n}" for n in range(cap))
    assert get(session, sim, "/contacts", **{name: at_cap}).status_code == 200
    over = get(session, sim, "/contacts", **{name: at_cap + ",one-more"})
    assert over.status_code == 400 and f"max {cap}" in over.json()[0]["error_message"]
    assert len(sim.malformed) == 1


def test_updated_after_incremental_sync_sees_updates_and_deletions(sim, clock):
    gold = sim.add_tag("Gold")
    seeded = [cid for _, cid in sim.seed_contacts(1200, tag_ids=[gold])]  # on a frozen clock
    session = api(sim)
    synced = listed(session, sim, status="all", limit="500")
    assert ids(synced) == seeded
    stamps = [c["updated_at"] for c in synced]
    assert stamps == sorted(stamps) and len(set(stamps)) == 1200  # microsecond tie-breaks
    mark = stamps[-1]
    assert listed(session, sim, status="all", updated_after=mark) == []  # strictly after
    assert ids(listed(session, sim, status="all", updated_after=stamps[-2])) == seeded[-1:]
    # the same millisecond on a frozen clock, then later ones
    sim.update_contact(seeded[5], tag_ids=[])
    sim.delete_contact(seeded[7])
    clock[0] += 2.5
    sim.update_contact(seeded[0], email="renamed@example.com")
    new = sim.add_contact("new@example.com")
    changes = listed(session, sim, status="all", updated_after=mark, limit="2", include="taggings")
    assert ids(changes) == [seeded[5], seeded[7], seeded[0], new]
    assert changes[0]["taggings"] == [] and changes[1]["deleted_at"] == "2030-03-17"
    assert changes[2]["email_address"]["address"] == "renamed@example.com"
    assert [c["updated_at"] for c in changes[2:]] == ["2030-03-17T17:46:42.500000Z", "2030-03-17T17:46:42.500001Z"]
    assert ids(listed(session, sim, updated_after=mark)) == [seeded[5], seeded[0], new]  # deletions: status=all
    assert ids(listed(session, sim, updated_after="2030-03-17T17:46:41Z")) == [seeded[0], new]
    assert ids(listed(session, sim, updated_after="2030-03-17T18:46:41+01:00")) == [seeded[0], new]
    assert listed(session, sim, updated_after=changes[-1]["updated_at"]) == []
    assert sim.malformed == []


def test_created_and_updated_ranges(sim, clock):
    early = sim.add_contact("early@example.com")
    clock[0] += 60
    late = sim.add_contact("late@example.com")
    clock[0] += 60
    sim.update_contact(early, list_ids=["L1"])
    session = api(sim)
    assert ids(listed(session, sim, created_after="2030-03-17T17:47:00Z")) == [late]
    assert ids(listed(session, sim, created_before="2030-03-17T17:47:00Z")) == [early]
    assert ids(listed(session, sim, updated_before="2030-03-17T17:48:00Z")) == [late]
    assert ids(listed(session, sim, updated_after="2030-03-17")) == [late, early]


# ----- query validation -------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=ten",
        "limit=",
        "limit=5&limit=6",
        "include_count=yes",
        "status=gone",
        "status=",
        "status=active,,deleted",
        "email=",
        "email=%20%20",
        "lists=L1,,L2",
        "lists=../x",
        "tags=",
        "updated_after=yesterday",
        "updated_after=2030-03-17T17:46:41 01:00",
        "created_before=2030-13-01",
        "include=everything",
        "include=taggings,",
        "segment_id=14",
        "sms_status=all",
        "next=abc",
        "cursor=",
        "colour=blue",
    ],
)
def test_contacts_reject_bad_queries(sim, query):
    resp = api(sim).get(f"{sim.base_url}/contacts?{query}", timeout=5)
    assert resp.status_code == 400
    assert all(set(e) == {"error_key", "error_message"} for e in resp.json())
    assert len(sim.malformed) == 1 and sim.malformed[0].startswith("GET /v3/contacts: ")


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "limit=x", "include_count=1", "cursor=abc", "status=all", "limit=1&limit=1"]
)
def test_tags_reject_bad_queries(sim, query):
    resp = api(sim).get(f"{sim.base_url}/contact_tags?{query}", timeout=5)
    assert resp.status_code == 400 and resp.json()[0]["error_key"] == "contacts.api.validation.error"
    assert len(sim.malformed) == 1 and sim.malformed[0].startswith("GET /v3/contact_tags: ")


@pytest.mark.parametrize("limit", ["1", "500"])
def test_limits_at_the_bounds_are_accepted(sim, limit):
    session = api(sim)
    assert get(session, sim, "/contacts", limit=limit).status_code == 200
    assert get(session, sim, "/contact_tags", limit=limit).status_code == 200
    assert sim.malformed == []


@pytest.mark.parametrize("method,path", [("POST", "/v3/contacts"), ("DELETE", "/v3/contact_tags")])
def test_only_reads_are_served(sim, method, path):
    resp = api(sim).request(method, sim.base_url.removesuffix("/v3") + path, json={}, timeout=5)
    assert resp.status_code == 404 and len(sim.malformed) == 1
