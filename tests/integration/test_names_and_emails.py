"""Tags by name, contacts by e-mail address, previews (contract section 4): the handlers template.yaml
names, moto, and the simulator over HTTP (its GET /v3/contact_tags and GET /v3/contacts)."""

from __future__ import annotations

import json

import pytest

from devkit import sample_account

REMOVE_TAGS = "/v3/activities/contacts_taggings_remove"


@pytest.fixture
def account(simulator):
    sample_account.seed(simulator)
    return simulator


def calls_to(simulator, path: str) -> list:
    return [call for call in simulator.calls if call.method == "GET" and call.path == path]


def run_to_the_end(invoke) -> dict[str, dict]:
    for _ in range(6):
        invoke.poller()
    return {event["request_id"]: event for event in invoke.results()}


def test_names_and_addresses_resolve_and_the_contacts_lose_the_tag(account, invoke, sqs_event, capsys):
    request = {
        "request_id": "crm-1",
        "source": {"emails": [" Ana@Example.com", "bo@example.com", "nobody@example.com"]},
        "tag_names": ["churned-2026 ", "No Such Tag"],
    }
    assert invoke.intake(sqs_event(request)) == {"batchItemFailures": []}
    event = run_to_the_end(invoke)["crm-1"]

    assert event["state"] == "completed" and event["source_type"] == "emails"
    assert event["tag_ids"] == ["t-churn-2026"]
    assert event["resolved"] == {"contacts": 2, "tags": 1}
    assert event["unresolved"] == {
        "tag_names": ["No Such Tag"],
        "emails": {"count": 1, "first": ["nobody@example.com"]},
    }
    [activity] = event["activities"]
    assert {"items_total_count", "items_completed_count", "errors"} <= activity.keys()
    [post] = [call for call in account.calls if call.path == REMOVE_TAGS]
    assert post.body == {"source": {"contact_ids": ["c-ana", "c-bo"]}, "tag_ids": ["t-churn-2026"]}
    assert "t-churn-2026" not in account.contacts["c-ana"]["taggings"]  # Constant Contact did it
    # One tag read (500 a page), one full directory sync (status=all, 500 a page), no per-address lookup.
    assert [call.query for call in calls_to(account, "/v3/contact_tags")] == [{"limit": "500"}]
    assert [call.query for call in calls_to(account, "/v3/contacts")] == [{"status": "all", "limit": "500"}]
    # Addresses never appear in the functions' logs.
    output = capsys.readouterr()
    assert "ana@example.com" not in (output.out + output.err).lower()
    assert "nobody@example.com" not in output.out + output.err


def test_a_warm_directory_resolves_a_second_request_without_a_call(account, invoke, sqs_event):
    invoke.intake(sqs_event({"request_id": "r-1", "source": {"emails": ["ana@example.com"]}, "tag_ids": ["t-1"]}))
    account.reset_counters()

    invoke.intake(
        sqs_event(
            {"request_id": "r-2", "source": {"emails": ["bo@example.com", "carla@example.com"]}, "tag_ids": ["t-1"]}
        )
    )

    assert calls_to(account, "/v3/contacts") == [] and account.count("POST", REMOVE_TAGS) == 1


def test_an_address_unknown_to_a_current_directory_costs_one_incremental_sync_call(account, invoke, sqs_event):
    invoke.intake(sqs_event({"request_id": "r-1", "source": {"emails": ["ana@example.com"]}, "tag_ids": ["t-1"]}))
    account.add_contact("dana@example.com", contact_id="c-dana")  # created since the last sync
    account.reset_counters()

    invoke.intake(
        sqs_event(
            {"request_id": "r-2", "source": {"emails": ["dana@example.com", "ghost@example.com"]}, "tag_ids": ["t-1"]}
        )
    )

    [sync] = calls_to(account, "/v3/contacts")
    assert sync.query["status"] == "all" and "updated_after" in sync.query
    [post] = [call for call in account.calls if call.path == REMOVE_TAGS]
    assert post.body["source"] == {"contact_ids": ["c-dana"]}


def test_a_contact_deleted_in_constant_contact_leaves_the_directory_at_the_next_sync(
    account, invoke, sqs_event, monkeypatch
):
    monkeypatch.setenv("DIRECTORY_SYNC_SECONDS", "0")  # the poller syncs on every run
    invoke.intake(sqs_event({"request_id": "r-1", "source": {"emails": ["carla@example.com"]}, "tag_ids": ["t-1"]}))
    account.delete_contact("c-carla")
    invoke.poller()

    invoke.intake(sqs_event({"request_id": "r-2", "source": {"emails": ["carla@example.com"]}, "tag_ids": ["t-1"]}))
    events = run_to_the_end(invoke)

    assert events["r-2"]["state"] == "failed" and "no contact resolved" in events["r-2"]["errors"][0]
    assert events["r-2"]["activities"] == [] and events["r-2"]["unresolved"]["emails"]["count"] == 1


def test_a_dry_run_counts_with_constant_contact_and_creates_nothing(account, invoke, sqs_event):
    request = {
        "request_id": "preview-1",
        "source": {"list_ids": ["l-newsletter", "l-promotions"]},
        "exclude": {"emails": ["ana@example.com"]},
        "tag_names": ["VIP", "gone"],
        "dry_run": True,
    }
    invoke.intake(sqs_event(request))
    [event] = invoke.results()

    assert (event["state"], event["event_type"]) == ("previewed", "untag.previewed")
    assert event["_attributes"] == {"event_type": "untag.previewed", "state": "previewed"}
    members = {
        cid for cid, c in account.contacts.items() if {"l-newsletter", "l-promotions"} & set(c["list_memberships"])
    }
    assert event["preview"] == {
        "activities": 1,
        "contacts": len(members),
        "unresolved": {"tag_names": ["gone"], "emails": {"count": 0, "first": []}},
    }
    assert event["resolved"] == {"contacts": 1, "tags": 1}
    assert account.count("POST", REMOVE_TAGS) == 0
    [count] = [call for call in calls_to(account, "/v3/contacts") if "include_count" in call.query]
    assert count.query == {"lists": "l-newsletter,l-promotions", "include_count": "true", "limit": "1"}


def test_with_no_sync_share_a_cold_directory_looks_addresses_up_one_by_one(account, invoke, sqs_event, monkeypatch):
    monkeypatch.setenv("SYNC_QUOTA_SHARE", "0")
    invoke.intake(
        sqs_event({"request_id": "r-1", "source": {"emails": ["bo@example.com", "x@example.org"]}, "tag_ids": ["t-1"]})
    )

    lookups = calls_to(account, "/v3/contacts")
    assert sorted(call.query["email"] for call in lookups) == ["bo@example.com", "x@example.org"]
    [post] = [call for call in account.calls if call.path == REMOVE_TAGS]
    assert post.body["source"] == {"contact_ids": ["c-bo"]}


def test_the_sample_batch_in_the_crms_words_reaches_its_outcomes(account, invoke, sample_event):
    assert invoke.intake(sample_event("intake-names-and-emails.json")) == {"batchItemFailures": []}
    events = run_to_the_end(invoke)

    states = {request_id: event["state"] for request_id, event in events.items()}
    assert states == {
        "crm-names-2026-12-02-1": "completed",
        "crm-2026-12-02-7": "completed",
        "crm-lists-2026-12-02-2": "completed",
        "crm-preview-2026-12-02-3": "previewed",
        "crm-preview-2026-12-02-4": "previewed",
        "crm-names-2026-12-02-5": "failed",
    }
    assert events["crm-preview-2026-12-02-4"]["preview"]["contacts"] == 2
    # Reported unresolved: by the failed request, and by the preview (in `unresolved` and in `preview`).
    assert json.dumps(events).count("ghost@example.com") == 3


def _directory_knows(stack, ids_by_email: dict[str, str]) -> None:
    """The contact directory as a finished sync leaves it (what the handlers then read)."""
    import time

    import boto3

    from untag.constant_contact import Contact
    from untag.directory import DynamoDirectory
    from untag.records import SyncState

    client = boto3.client("dynamodb")
    directory = DynamoDirectory(lambda: client, stack.table_name, sleep=lambda _: None)
    directory.apply(Contact(contact_id, email) for email, contact_id in ids_by_email.items())
    directory.save_sync_state(SyncState(synced_until=time.time() + 60))


@pytest.mark.parametrize(("id_length", "state"), [(56, "completed"), (64, "failed")])
def test_5000_excluded_addresses_fit_the_record_or_fail_saying_so(account, invoke, sqs_event, stack, id_length, state):
    # DynamoDB refuses an item over 400 KB (tests/aws_rules/limits.py enforces it on every write): the largest
    # resolution the guard lets through must be written; one past it must end `failed`, never loop.
    emails = [f"u{n:04d}@example.com" for n in range(5000)]
    _directory_knows(stack, {email: f"{n:0{id_length}d}" for n, email in enumerate(emails)})
    request = {
        "request_id": "big",
        "source": {"list_ids": ["l-newsletter"]},
        "exclude": {"emails": emails},
        "tag_ids": ["t-1"],
    }

    assert invoke.intake(sqs_event(request)) == {"batchItemFailures": []}
    event = run_to_the_end(invoke)["big"]

    assert event["state"] == state and event["resolved"] == {"contacts": 5000, "tags": 0}
    if state == "failed":
        assert "more than one request's record holds" in event["errors"][0]
        assert account.count("POST", REMOVE_TAGS) == 0
    else:
        [post] = [call for call in account.calls if call.path == REMOVE_TAGS]
        assert len(post.body["exclude"]["contact_ids"]) == 5000


def test_a_preview_of_30_lists_counts_them_25_a_call(account, invoke, sqs_event):
    lists = [f"l-{n}" for n in range(30)]
    invoke.intake(sqs_event({"request_id": "p-30", "source": {"list_ids": lists}, "tag_ids": ["t-1"], "dry_run": True}))

    [event] = invoke.results()
    counts = [call.query for call in calls_to(account, "/v3/contacts")]
    assert [len(query["lists"].split(",")) for query in counts] == [25, 5]  # GET /contacts takes at most 25 lists
    assert event["preview"]["contacts"] == 0 and event["preview"]["activities"] == 1
