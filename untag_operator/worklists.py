"""`untag pending` and `untag ambiguous`: the poller's work lists, and the creates that got no clear answer."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from untag_operator.console import EXIT_OK
from untag_operator.target import resolve_target


def cmd_pending(args: argparse.Namespace) -> int:
    """The work lists: requests waiting for their activities, activities followed, events to publish."""
    store = resolve_target(args).store()
    activities = store.due_activities(limit=args.limit)
    unpublished = store.due_publications(limit=args.limit)
    waiting = store.due_creations(until=None, limit=args.limit)
    now = time.time()
    if args.json:
        print(
            json.dumps(
                {
                    "waiting_requests": [
                        {
                            "request_id": record.request_id,
                            "received_at": record.received_at,
                            "planned": record.planned,
                            "created": len(record.activities),
                        }
                        for record in waiting
                    ],
                    "activities": [
                        {
                            **{
                                key: value
                                for key, value in record.status.as_event().items()
                                if key
                                in (
                                    "activity_id",
                                    "state",
                                    "percent_done",
                                    "items_total_count",
                                    "items_completed_count",
                                )
                            },
                            "due_at": record.due_at,
                            "deadline_at": record.deadline_at,
                            "request_ids": list(record.request_ids),
                        }
                        for record in activities
                    ],
                    "unpublished_events": [
                        {"request_id": publication.request_id, "state": publication.state}
                        for publication in unpublished
                    ],
                },
                indent=2,
            )
        )
        return EXIT_OK
    if not activities and not unpublished and not waiting:
        print("nothing pending: the poller's work list is empty")
        return EXIT_OK
    if waiting:
        print(
            f"{len(waiting)} request(s) recorded, waiting for their activities to be created: "
            + ", ".join(f"{record.request_id} ({len(record.activities)} of {record.planned})" for record in waiting)
        )
    if activities:
        print(f"{len(activities)} activit{'y' if len(activities) == 1 else 'ies'} on the poller's work list")
        print(f"{'ACTIVITY':<38} {'STATE':<11} {'DONE':>4}  {'NEXT LOOK':<14} {'DEADLINE':<16} REQUESTS")
        for record in activities:
            next_look = "settling" if record.terminal else _relative((record.due_at or now) - now)
            print(
                f"{record.activity_id:<38} {record.status.state:<11} {record.status.percent_done or 0:>3}%  "
                f"{next_look:<14} {_relative(record.deadline_at - now):<16} {', '.join(record.request_ids)}"
            )
    if unpublished:
        print(
            f"{len(unpublished)} result event(s) stored, waiting to be published (the next poller run retries): "
            + ", ".join(publication.request_id for publication in unpublished)
        )
    return EXIT_OK


def cmd_ambiguous(args: argparse.Namespace) -> int:
    """Creates that got no clear answer: each may have left an activity in Constant Contact nobody follows."""
    items = resolve_target(args).store().ambiguous_creates(limit=args.limit)
    if args.json:
        print(json.dumps([asdict(item) for item in items], indent=2))
        return EXIT_OK
    if not items:
        print("no ambiguous creates")
        return EXIT_OK
    print(
        f"{len(items)} create(s) got no clear answer (timeout, dropped connection or 5xx): Constant Contact may "
        "have created an activity that is not followed; check its activity list around that time"
    )
    print(f"{'AT (UTC)':<20} {'REQUEST':<40} {'CHUNK':>5}  ERROR")
    for item in items:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item.at))
        print(f"{at:<20} {item.request_id:<40} {item.chunk + 1:>5}  {item.error}")
    return EXIT_OK


def _relative(seconds: float) -> str:
    amount = abs(seconds)
    text = f"{amount:.0f}s" if amount < 120 else f"{amount / 60:.0f}m" if amount < 7200 else f"{amount / 3600:.1f}h"
    return f"in {text}" if seconds >= 0 else f"{text} overdue"
