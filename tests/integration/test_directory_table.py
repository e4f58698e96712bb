"""The contact directory, the tag cache and the quota shares in the real table shape (moto, template.yaml's table)."""

from __future__ import annotations

import boto3

from untag.constant_contact import Contact, Tag
from untag.controls import Controls
from untag.directory import DynamoDirectory, email_key
from untag.records import SyncState, TagCache


def directory(stack) -> DynamoDirectory:
    client = boto3.client("dynamodb")
    return DynamoDirectory(lambda: client, stack.table_name, sleep=lambda _: None)


def test_the_directory_keeps_address_digests_and_answers_lookups(stack, table):
    store = directory(stack)
    store.apply([Contact(f"c-{n}", f"user{n}@example.com") for n in range(130)])  # more than one batch of 25

    found = store.lookup([f"user{n}@example.com" for n in range(0, 140, 7)])

    assert found == {f"user{n}@example.com": f"c-{n}" for n in range(0, 130, 7)}
    assert not any("example.com" in str(item) for item in table.items())  # digests, never addresses


def test_a_deleted_contact_leaves_the_directory_unless_its_address_now_names_another(stack):
    store = directory(stack)
    store.apply([Contact("c-1", "a@example.com"), Contact("c-2", "b@example.com")])

    store.apply([Contact("c-1", "a@example.com", deleted=True), Contact("c-9", "b@example.com", deleted=True)])

    assert store.lookup(["a@example.com", "b@example.com"]) == {"b@example.com": "c-2"}


def test_a_live_contact_wins_over_a_deleted_one_with_the_same_address_in_one_page(stack):
    store = directory(stack)
    store.apply([Contact("c-new", "a@example.com"), Contact("c-old", "a@example.com", deleted=True)])
    assert store.lookup(["a@example.com"]) == {"a@example.com": "c-new"}


def test_the_sync_state_round_trips(stack):
    store = directory(stack)
    assert store.sync_state() == SyncState() and not store.sync_state().in_use

    state = SyncState().started(100.0).advanced("/v3/contacts?cursor=abc", 500)
    store.save_sync_state(state)
    assert store.sync_state() == state and not state.current_for(50.0)

    done = state.advanced(None, 10)
    store.save_sync_state(done)
    assert store.sync_state() == SyncState(synced_until=100.0, contacts_synced=510)
    assert done.current_for(100.0) and not done.current_for(100.5)


def test_the_tag_cache_is_stored_in_pages_and_only_the_latest_generation_counts(stack):
    store = directory(stack)
    assert store.tag_cache() == TagCache()
    tags = [Tag(f"t-{n}", f"Tag {n}") for n in range(2500)]
    store.save_tag_cache(TagCache.of(tags, 10.0))
    store.save_tag_cache(TagCache.of(tags[:3] + [Tag("t-x", " TAG 1")], 20.0))

    cache = store.tag_cache()
    assert cache.refreshed_at == 20.0 and len(cache.names) == 3
    assert cache.match(["tag 1", "Tag 2", "Tag 2000"]) == (["t-1", "t-x", "t-2"], ["Tag 2000"])


def test_quota_shares_are_granted_until_spent_and_calls_can_be_given_back(stack):
    controls = Controls(lambda: boto3.client("dynamodb"), stack.table_name, clock=lambda: 1_800_000_000.0)

    assert controls.take_calls("sync", 600, 1000) == 600
    assert controls.take_calls("sync", 600, 1000) == 400  # what is left
    assert controls.take_calls("sync", 1, 1000) == 0
    assert controls.take_calls("lookups", 5, 500) == 5  # another purpose, another share
    assert controls.take_calls("counts", 5, 0) == 0  # a share of nothing grants nothing
    assert controls.take_calls("fresh", 50, 20) == 20  # never more than the share, even on the first take
    controls.return_calls("sync", 100)
    assert controls.take_calls("sync", 150, 1000) == 100


def test_email_keys_are_stable_digests():
    assert email_key("a@example.com") == email_key("a@example.com")
    assert "a@example.com" not in email_key("a@example.com")["pk"]
