"""`untag pending` and `untag ambiguous`: the poller's work lists, and the creates that got no clear answer."""

from __future__ import annotations

import argparse
import json
import time

from untag.activity import TERMINAL_STATES
from untag_operator.console import EXIT_OK
from untag_operator.target import resolve_target


def cmd_pending(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    store = target.store()
    activities = store.due_activities(limit=args.limit)
    unpublished = store.due_publications(limit=args.limit)
    waiting = store.due_creations(until=None, limit=args.limit)
    now = time.time()
    if args.json:
        print(
            json.dumps(
                {
                    "waiting_requests": [
                        {key: item.get(key) for key in ("request_id", "received_at", "planned", "due_at")}
                        | {"created": len(item.get("activities") or {})}
                        for item in waiting
                    ],
                    "activities": [
                        {
                            key: item.get(key)
                            for key in (
                                "activity_id",
                                "state",
                                "percent_done",
                                "items_total_count",
                                "items_completed_count",
                                "due_at",
                                "deadline_at",
                                "request_ids",
                            )
                        }
                        for item in activities
                    ],
                    "unpublished_events": [
                        {"request_id": item.get("request_id"), "sk": item["sk"], "due_at": item.get("due_at")}
                        for item in unpublished
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
            + ", ".join(
                f"{item.get('request_id')} ({len(item.get('activities') or {})} of {item.get('planned')})"
                for item in waiting
            )
        )
    if activities:
        print(f"{len(activities)} activit{'y' if len(activities) == 1 else 'ies'} on the poller's work list")
        print(f"{'ACTIVITY':<38} {'STATE':<11} {'DONE':>4}  {'NEXT LOOK':<14} {'DEADLINE':<16} REQUESTS")
        for item in activities:
            state = item.get("state", "?")
            next_look = "settling" if state in TERMINAL_STATES else _relative(item.get("due_at", now) - now)
            deadline = _relative(item["deadline_at"] - now) if "deadline_at" in item else "-"
            requests = ", ".join(item.get("request_ids", ()))
            print(
                f"{item.get('activity_id', '?'):<38} {state:<11} {item.get('percent_done') or 0:>3}%  "
                f"{next_look:<14} {deadline:<16} {requests}"
            )
    if unpublished:
        print(
            f"{len(unpublished)} result event(s) stored, waiting to be published (the next poller run retries): "
            + ", ".join(str(item.get("request_id")) for item in unpublished)
        )
    return EXIT_OK


def cmd_ambiguous(args: argparse.Namespace) -> int:
    """Creates that got no clear answer: each may have left an activity in Constant Contact nobody follows."""
    items = resolve_target(args).store().ambiguous_creates(limit=args.limit)
    if args.json:
        print(
            json.dumps(
                [{key: item.get(key) for key in ("request_id", "chunk", "at", "error")} for item in items], indent=2
            )
        )
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
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(item.get("at") or 0)))
        print(f"{at:<20} {str(item.get('request_id')):<40} {int(item.get('chunk', 0)) + 1:>5}  {item.get('error')}")
    return EXIT_OK


def _relative(seconds: float) -> str:
    amount = abs(seconds)
    text = f"{amount:.0f}s" if amount < 120 else f"{amount / 60:.0f}m" if amount < 7200 else f"{amount / 3600:.1f}h"
    return f"in {text}" if seconds >= 0 else f"{text} overdue"
