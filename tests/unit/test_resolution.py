"""Tags by name, contacts by e-mail address, previews (contract section 4), on in-memory fakes.

The fakes serve two tags or contacts a page, so that paging is exercised; tests/integration drives
the same behaviour through moto and the simulator over HTTP.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.unit.fakes import QuotaSpent, Services, budget
from untag.constant_contact import PermanentApiError, Tag, TransientApiError
from untag.intake import Message, accept_batch
from untag.poller import poll
from untag.records import RequestStatus, SyncState, TagCache

AT = 1_800_000_000.0


def send(services: Services, *bodies: dict) -> None:
    messages = [Message(f"m-{n}", json.dumps(body), sent_at=services.clock()) for n, body in enumerate(bodies)]
    assert accept_batch(messages, services, budget(services)) == set()


def finish(services: Services) -> None:
    """Poll a few times a minute apart, Constant Contact completing every activity in between."""
    for _ in range(3):
        for activity_id in services.constant_contact.states:
            services.constant_contact.states[activity_id] = "completed"
        services.clock.advance(60)
        poll(services, budget(services))


def event_of(services: Services, request_id: str) -> dict:
    [event] = [event for event in services.publisher.events if event["request_id"] == request_id]
    return event


@pytest.fixture
def services() -> Services:
    services = Services()
    api = services.constant_contact
    api.tags = {"t-churn": "Churned-2026", "t-vip": "VIP", "t-old": "old"}
    for n in range(5):
        api.add_contact(f"user{n}@example.com", f"c-{n}")
    return services


def test_tag_names_resolve_ignoring_case_and_spaces_and_the_unmatched_ones_are_reported(services):
    send(
        services,
        {
            "request_id": "r1",
            "source": {"contact_ids": ["c-1"]},
            "tag_names": [" churned-2026", "vip ", "No Such Tag"],
            "tag_ids": ["t-given"],
        },
    )
    finish(services)

    [body] = services.constant_contact.created
    assert sorted(body["tag_ids"]) == ["t-churn", "t-given", "t-vip"]
    event = event_of(services, "r1")
    assert event["state"] == "completed"
    assert event["unresolved"] == {"tag_names": ["No Such Tag"], "emails": {"count": 0, "first": []}}
    assert event["resolved"] == {"contacts": 0, "tags": 2}
    assert services.constant_contact.calls.count("tags") == 2  # three tags, two a page


def test_the_tag_cache_is_refreshed_on_a_miss_at_most_once_per_interval(services):
    send(services, {"request_id": "r1", "source": {"contact_ids": ["c-1"]}, "tag_names": ["VIP"]})
    send(services, {"request_id": "r2", "source": {"contact_ids": ["c-2"]}, "tag_names": ["vip", "Nope"]})
    assert services.constant_contact.calls.count("tags") == 2  # one refresh: the miss came within the interval

    services.clock.advance(services.config.tag_refresh_seconds + 1)
    services.constant_contact.tags["t-new"] = "Nope"
    send(services, {"request_id": "r3", "source": {"contact_ids": ["c-3"]}, "tag_names": ["nope"]})
    assert services.constant_contact.calls.count("tags") == 4
    assert services.constant_contact.created[-1]["tag_ids"] == ["t-new"]


def test_a_request_whose_tag_names_all_fail_to_resolve_fails_with_no_activity(services):
    send(services, {"request_id": "r1", "source": {"list_ids": ["l-1"]}, "tag_names": ["ghost"]})

    event = event_of(services, "r1")
    assert event["state"] == "failed" and event["activities"] == []
    assert "no tag resolved" in event["errors"][0]
    assert event["unresolved"]["tag_names"] == ["ghost"]
    assert services.constant_contact.created == []


def test_emails_resolve_through_the_directory_and_the_unknown_ones_are_counted(services):
    send(
        services,
        {
            "request_id": "r1",
            "source": {"emails": [" USER1@example.com", "user2@example.com", "nobody@example.com"]},
            "tag_ids": ["t-1"],
        },
    )
    finish(services)

    [body] = services.constant_contact.created
    assert body["source"] == {"contact_ids": ["c-1", "c-2"]}
    event = event_of(services, "r1")
    assert event["source_type"] == "emails" and event["state"] == "completed"
    assert event["resolved"] == {"contacts": 2, "tags": 0}
    assert event["unresolved"]["emails"] == {"count": 1, "first": ["nobody@example.com"]}
    # A cold directory: one full sync (5 contacts, 2 a page), then the directory is current: no lookup.
    assert services.constant_contact.calls.count("contacts") == 3
    assert "lookup" not in services.constant_contact.calls


def test_a_warm_directory_answers_without_calling_constant_contact(services):
    send(services, {"request_id": "r1", "source": {"emails": ["user1@example.com"]}, "tag_ids": ["t-1"]})
    calls = len(services.constant_contact.calls)
    services.clock.advance(1)

    send(
        services,
        {"request_id": "r2", "source": {"emails": [f"user{n}@example.com" for n in range(5)]}, "tag_ids": ["t-2"]},
    )

    assert services.constant_contact.calls[calls:] == ["create"]


def test_a_deleted_contact_leaves_the_directory_at_the_next_sync(services):
    send(services, {"request_id": "r1", "source": {"emails": ["user1@example.com"]}, "tag_ids": ["t-1"]})
    services.constant_contact.add_contact("user1@example.com", "c-1", deleted=True)
    services.clock.advance(services.config.directory_sync_seconds + 1)
    finish(services)  # the poller's periodic sync
    services.clock.advance(1)

    send(services, {"request_id": "r2", "source": {"emails": ["user1@example.com"]}, "tag_ids": ["t-1"]})

    event = event_of(services, "r2")
    assert event["state"] == "failed" and "no contact resolved" in event["errors"][0]
    assert event["unresolved"]["emails"] == {"count": 1, "first": ["user1@example.com"]}


def test_exclude_emails_become_excluded_contact_ids(services):
    send(
        services,
        {
            "request_id": "r1",
            "source": {"list_ids": ["l-1"]},
            "tag_ids": ["t-1"],
            "exclude": {"emails": ["user3@example.com"], "contact_ids": ["c-9"]},
        },
    )

    [body] = services.constant_contact.created
    assert body == {"source": {"list_ids": ["l-1"]}, "exclude": {"contact_ids": ["c-9", "c-3"]}, "tag_ids": ["t-1"]}


def test_a_cold_directory_whose_sync_share_is_spent_looks_addresses_up_one_by_one(services):
    services.controls.calls_taken["sync"] = services.config.calls_for("sync")
    send(
        services, {"request_id": "r1", "source": {"emails": ["user4@example.com", "x@example.com"]}, "tag_ids": ["t-1"]}
    )

    assert services.constant_contact.calls.count("lookup") == 2
    assert services.constant_contact.created[0]["source"] == {"contact_ids": ["c-4"]}
    assert services.directory.contacts == {"user4@example.com": "c-4"}  # what a lookup found is kept


def test_a_request_waits_while_its_shares_are_spent_and_is_resolved_after_midnight(services):
    services.controls.calls_taken = {"sync": 10**6, "lookups": 10**6}
    send(services, {"request_id": "r1", "source": {"emails": ["user4@example.com"]}, "tag_ids": ["t-1"]})
    assert services.store.requests["r1"].status is RequestStatus.RESOLVING
    assert services.store.resolution_due["r1"] > services.clock() + 3600  # due after the daily reset

    services.controls.calls_taken = {}
    services.clock.now = services.store.resolution_due["r1"]
    poll(services, budget(services))
    assert services.store.requests["r1"].status is RequestStatus.PENDING


def test_a_transient_failure_leaves_the_request_on_the_list(services):
    services.constant_contact.list_tags = lambda **_: (_ for _ in ()).throw(TransientApiError("down", status=503))
    send(services, {"request_id": "r1", "source": {"contact_ids": ["c-1"]}, "tag_names": ["VIP"]})
    assert services.store.requests["r1"].status is RequestStatus.RESOLVING
    assert services.publisher.events == []


def test_a_spent_daily_quota_stops_resolving(services):
    services.constant_contact.list_tags = lambda **_: (_ for _ in ()).throw(QuotaSpent())
    send(services, {"request_id": "r1", "source": {"contact_ids": ["c-1"]}, "tag_names": ["VIP"]})
    assert services.controls.spent and services.store.requests["r1"].status is RequestStatus.RESOLVING


def test_a_dry_run_creates_nothing_and_previews_what_it_would_do(services):
    send(
        services,
        {
            "request_id": "p1",
            "source": {"list_ids": [f"l-{n}" for n in range(30)]},
            "tag_names": ["vip", "gone"],
            "dry_run": True,
        },
    )

    assert services.constant_contact.created == []
    event = event_of(services, "p1")
    assert (event["state"], event["event_type"]) == ("previewed", "untag.previewed")
    assert event["preview"] == {
        "activities": 1,
        "contacts": 7 * 30,  # two counts: 25 lists, then 5
        "unresolved": {"tag_names": ["gone"], "emails": {"count": 0, "first": []}},
    }
    assert services.constant_contact.calls.count("count") == 2
    assert services.store.requests["p1"].status is RequestStatus.FINISHED


@pytest.mark.parametrize(
    ("source", "contacts", "counts"),
    [
        ({"contact_ids": ["c-1", "c-2"]}, 2, 0),
        ({"new_subscriber": True}, None, 0),
        ({"all_active_contacts": True}, 7, 1),
    ],
)
def test_a_preview_counts_contacts_only_where_constant_contact_can(services, source, contacts, counts):
    send(services, {"request_id": "p1", "source": source, "tag_ids": ["t-1"], "dry_run": True})

    event = event_of(services, "p1")
    assert event["preview"]["contacts"] == contacts and "resolved" not in event
    assert services.constant_contact.calls.count("count") == counts


def test_names_that_resolve_past_the_activity_cap_fail_the_request(services):
    # 50 names fit one activity when read; one of them names two tags (Constant Contact's names differ in case).
    services.constant_contact.tags = {f"t-{n}": f"Tag-{n}" for n in range(50)} | {"t-dup": "TAG-0"}
    services.constant_contact.page = 500
    services.config = replace(services.config, max_activities_per_request=1)

    send(
        services, {"request_id": "r1", "source": {"contact_ids": ["c-1"]}, "tag_names": [f"tag-{n}" for n in range(50)]}
    )

    event = event_of(services, "r1")
    assert event["state"] == "failed" and event["activities"] == []
    assert event["errors"] == [
        "request: resolves to 51 tags and 2 activities, more than the caps of 500 tags and 1 activities per request"
    ]
    assert services.constant_contact.created == []


def test_a_preview_whose_count_fails_waits_on_the_list_and_publishes_nothing(services):
    def down(criteria):
        raise TransientApiError("Constant Contact count answered 503", status=503)

    services.constant_contact.count_contacts = down
    send(services, {"request_id": "p1", "source": {"all_active_contacts": True}, "tag_ids": ["t-1"], "dry_run": True})

    assert services.store.requests["p1"].status is RequestStatus.RESOLVING and services.publisher.events == []
    assert services.store.resolution_due["p1"] == services.clock() + services.config.create_retry_seconds


def test_an_unexpected_failure_retries_one_request_and_ends_it_failed_past_the_deadline(services):
    def broken(emails):
        raise RuntimeError("a bug")

    services.directory.lookup = broken
    send(
        services,
        {"request_id": "r1", "source": {"emails": ["user1@example.com"]}, "tag_ids": ["t-1"]},
        {"request_id": "r2", "source": {"contact_ids": ["c-2"]}, "tag_names": ["VIP"]},
    )
    assert services.store.requests["r1"].status is RequestStatus.RESOLVING  # tried again later
    assert services.store.requests["r2"].status is RequestStatus.PENDING  # its neighbour went ahead

    services.clock.advance(services.config.activity_deadline_hours * 3600 + 1)
    poll(services, budget(services))

    event = event_of(services, "r1")
    assert event["state"] == "failed" and event["errors"] == [
        "request: could not be resolved before the service's deadline (RuntimeError)"
    ]


def test_more_than_5000_addresses_are_refused_naming_the_cap(services):
    emails = [f"u{n}@example.com" for n in range(5001)]
    send(services, {"request_id": "r1", "source": {"emails": emails}, "tag_ids": ["t-1"]})
    [event] = services.publisher.events
    assert event["state"] == "rejected"
    assert event["errors"] == ["source.emails: 5001 addresses, more than the cap of 5000 per request"]


def test_addresses_that_resolve_to_more_ids_than_a_record_holds_fail_the_request(services):
    emails = [f"u{n}@example.com" for n in range(5000)]
    services.directory.contacts = {email: f"{n:064d}" for n, email in enumerate(emails)}  # 64-character ids
    services.directory.state = SyncState(synced_until=services.clock() + 10)

    send(
        services,
        {"request_id": "r1", "source": {"list_ids": ["l-1"]}, "exclude": {"emails": emails}, "tag_ids": ["t-1"]},
    )

    event = event_of(services, "r1")
    assert event["state"] == "failed"
    assert event["errors"] == [
        "request: resolves to 1 source ids and 5000 excluded contact ids, more than one request's record holds; "
        "split it into smaller requests"
    ]
    assert services.constant_contact.calls == []


def test_one_instance_refreshes_the_tags_at_a_time(services):
    services.controls.acquire = lambda name, holder, lease_seconds: None  # another instance holds the lease
    send(services, {"request_id": "r1", "source": {"contact_ids": ["c-1"]}, "tag_names": ["VIP"]})
    assert "tags" not in services.constant_contact.calls  # no cache yet: the request waits for the other's refresh
    assert services.store.requests["r1"].status is RequestStatus.RESOLVING
    assert services.store.resolution_due["r1"] == services.clock() + 5

    services.directory.tags = TagCache.of([Tag("t-vip", "VIP")], services.clock())  # what the other one stored
    services.clock.advance(5)
    poll(services, budget(services))
    assert services.store.requests["r1"].tag_ids == ("t-vip",) and "tags" not in services.constant_contact.calls


def test_a_sender_whose_clock_is_ahead_does_not_keep_its_request_waiting(services):
    body = {"request_id": "r1", "source": {"emails": ["user1@example.com", "nobody@example.com"]}, "tag_ids": ["t"]}
    message = Message("m-1", json.dumps(body), sent_at=services.clock() + 3600)  # SentTimestamp an hour ahead

    assert accept_batch([message], services, budget(services)) == set()

    assert services.store.requests["r1"].status is RequestStatus.PENDING
    assert services.constant_contact.created[0]["source"] == {"contact_ids": ["c-1"]}


def test_a_refused_next_page_starts_the_directory_pass_again(services):
    api = services.constant_contact
    pages = api.list_contacts
    refused: list[str] = []

    def list_contacts(*, updated_after=None, next_link=None):
        if next_link and not refused:  # a cursor Constant Contact no longer takes (expired): 400
            refused.append(next_link)
            raise PermanentApiError("Constant Contact contacts answered 400 bad cursor", status=400)
        return pages(updated_after=updated_after, next_link=next_link)

    api.list_contacts = list_contacts
    send(services, {"request_id": "r1", "source": {"emails": ["user4@example.com"]}, "tag_ids": ["t-1"]})

    assert refused and services.directory.contacts["user4@example.com"] == "c-4"  # the new pass read every page
    assert services.store.requests["r1"].status is RequestStatus.PENDING
