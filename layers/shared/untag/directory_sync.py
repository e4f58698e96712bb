"""Keeping the contact directory current: the incremental sync (``GET /v3/contacts?status=all&updated_after=...``,
500 a page, following ``_links.next``), resumable page by page, one instance at a time (a lease), within the
``sync`` share of the daily quota. Used by the resolution (a miss) and by every poller run (every
``DIRECTORY_SYNC_SECONDS``, once the directory is in use)."""

from __future__ import annotations

import uuid

from untag.budget import TimeBudget
from untag.constant_contact import ApiError, PermanentApiError, QuotaExceeded
from untag.observability import count, logger
from untag.ports import Ports
from untag.records import SyncState
from untag.result_event import utc_timestamp

SYNC_PAGES_PER_RUN = 40  # 20,000 contacts a run at most: a cold directory fills over several runs
SYNC_OVERLAP_SECONDS = 60.0  # each pass re-reads the last minute of the previous one (clocks differ)


def keep_directory_current(services: Ports, budget: TimeBudget) -> None:
    """Once the directory is in use (an address was resolved), sync it every ``DIRECTORY_SYNC_SECONDS``,
    so that requests find it current (and warm: no call at all)."""
    if not services.directory.sync_state().in_use:
        return
    try:
        sync_directory(services, budget, holder=uuid.uuid4().hex, force=False)
    except QuotaExceeded:
        services.controls.quota_exceeded()
    except ApiError as error:
        logger.warning("the directory sync stopped; the next run goes on", extra={"error": str(error)})


def sync_directory(
    services: Ports, budget: TimeBudget, *, holder: str, pages: int = SYNC_PAGES_PER_RUN, force: bool = True
) -> SyncState | None:
    """Catch the contact directory up with Constant Contact: go on with the sync pass in progress, or start
    one from the last (``GET /contacts?status=all&updated_after=...``), at most ``pages`` pages, within the
    sync share. Returns the state it left (None if another invocation is syncing)."""
    directory, controls, api = services.directory, services.controls, services.constant_contact
    if controls.acquire("directory-sync", holder, budget.lease_seconds()) is None:
        return None
    try:
        state = directory.sync_state()
        if (
            not force
            and state.next_link is None
            and state.synced_until is not None
            and services.clock() - state.synced_until < services.config.directory_sync_seconds
        ):
            return state
        if state.pass_started_at is None or state.next_link is None:
            state = state.started(services.clock())
        for _ in range(pages):
            if budget.exhausted() or not controls.take_calls("sync", 1, services.config.calls_for("sync")):
                break
            after = None if state.synced_until is None else utc_timestamp(state.synced_until - SYNC_OVERLAP_SECONDS)
            try:
                contacts, link = api.list_contacts(
                    updated_after=after if state.next_link is None else None, next_link=state.next_link
                )
            except PermanentApiError as error:
                if state.next_link is None:
                    raise
                logger.warning(
                    "the directory sync's next page is refused; the pass starts again", extra={"error": str(error)}
                )
                state = state.started(services.clock())
                continue
            directory.apply(contacts)
            count("DirectoryContactsSynced", len(contacts))
            state = state.advanced(link, len(contacts))
            directory.save_sync_state(state)
            if link is None:
                break
        return state
    finally:
        controls.release("directory-sync", holder)
