"""`untag status`: everything the activity table knows of one request, once or until it is finished."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from untag.activity import TERMINAL_STATES
from untag.records import RequestRecord
from untag.store import ActivityStore
from untag_operator.console import EXIT_NOT_FOUND, EXIT_OK, CliError, note
from untag_operator.target import Target, resolve_target


def request_report(target: Target, request_id: str) -> dict[str, Any]:
    """Everything the table knows of one request: the request, its activities, progress, result."""
    store = target.store()
    record = store.get_request(request_id)
    rejections = store.rejections(request_id)
    if record is None and not rejections:
        raise CliError(
            f"unknown request id {request_id!r}: not in table {target.output('ActivityTableName')} (a request just "
            f"sent may still wait in the intake queue's batching window; finished ones expire after RetentionDays)",
            EXIT_NOT_FOUND,
        )
    report: dict[str, Any] = {"request_id": request_id}
    if record is not None:
        report.update(_accepted(store, record))
    if rejections:
        report["rejections"] = rejections
        if record is None:
            report.update(status="rejected", state="rejected", percent_done=100, event=rejections[-1])
    return report


def _accepted(store: ActivityStore, record: RequestRecord) -> dict[str, Any]:
    chunks = sorted(record.activities.items())
    known = store.get_activities({activity_id for _, activity_id in chunks})
    activities = []
    for index, activity_id in chunks:
        activity = known.get(activity_id)
        status = (
            activity.status.as_event()
            if activity
            else {
                "activity_id": activity_id,
                "state": "unknown",
                "percent_done": 0,
                "items_total_count": None,
                "items_completed_count": None,
                "errors": [],
                "created_at": None,
                "completed_at": None,
            }
        )
        shared_with = [other for other in (activity.request_ids if activity else ()) if other != record.request_id]
        activities.append({"index": index, **status, "shared_with": shared_with})
    creation_errors = record.creation_error_list()
    planned = record.planned or max(len(chunks), 1)
    event = json.loads(record.event) if record.event else None
    if event is not None:
        percent = 100
        creation_errors = creation_errors or [
            error for error in event.get("errors", ()) if "could not be created" in error
        ]
    else:  # chunks not created yet count 0; a chunk Constant Contact refused is over
        done = sum(int(a["percent_done"] or 0) if a["state"] not in TERMINAL_STATES else 100 for a in activities)
        percent = int((done + 100 * len(creation_errors)) / planned)
    return {
        "status": record.status.value,
        "state": event["state"] if event else None,
        "percent_done": percent,
        "source_type": record.source_type,
        "tag_ids": list(record.tag_ids),
        "tag_names": list(record.tag_names),
        "resolution": record.resolution.as_item() if record.resolution else None,
        "dry_run": record.dry_run,
        "metadata": record.metadata,
        "received_at": record.received_at,
        "finished_at": record.finished_at,
        "planned_activities": planned,
        "activities": activities,
        "creation_errors": creation_errors,
        "event": event,
    }


def print_report(report: dict[str, Any]) -> None:
    lines = [f"request    {report['request_id']}"]
    if report.get("status") == "rejected":
        lines.append("state      rejected (never sent to Constant Contact)")
    elif report.get("state"):
        lines.append(f"state      {report['state']} (finished {report.get('finished_at')})")
    elif report.get("status") == "resolving":
        lines.append("state      resolving (tag names or e-mail addresses to ids, or a preview)")
    else:
        created = len(report["activities"]) + len(report["creation_errors"])
        lines.append(f"state      {report['status']} ({created} of {report['planned_activities']} activities created)")
    if report.get("status") != "rejected":
        lines += [
            f"received   {report.get('received_at')}",
            f"removes    {', '.join(report.get('tag_ids') or report.get('tag_names') or ())}"
            f" (source {report.get('source_type')})",
            f"progress   {report['percent_done']}%",
        ]
        if report.get("metadata") is not None:
            lines.append(f"metadata   {json.dumps(report['metadata'])}")
        if report["activities"]:
            lines.append("activities")
            for activity in report["activities"]:
                counts = (
                    ""
                    if activity["items_total_count"] is None
                    else f"  {activity['items_completed_count'] or 0}/{activity['items_total_count']} contacts"
                )
                others = len(activity["shared_with"])
                shared = f"  shared with {others} other request(s)" if others else ""
                lines.append(
                    f"  #{activity['index']:<3} {activity['activity_id']}  {activity['state']:<11} "
                    f"{activity['percent_done'] or 0:>3}%{counts}{shared}"
                )
        for error in report["creation_errors"]:
            lines.append(f"  not created: {error}")
    for rejection in report.get("rejections", ()):
        lines.append(f"rejected   {rejection['finished_at']}:")
        lines += [f"  - {error}" for error in rejection["errors"]]
    if report.get("event"):
        lines += ["result event", json.dumps(report["event"], indent=2)]
    print("\n".join(lines))


def cmd_status(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    deadline = time.monotonic() + args.timeout
    last_progress = ""
    while True:
        try:
            report = request_report(target, args.request_id)
        except CliError as error:  # with --wait, a request still in the queue is not known yet
            if not (args.wait and error.code == EXIT_NOT_FOUND and time.monotonic() < deadline):
                raise
            report = None
        if report is not None and (report.get("event") or not args.wait):
            break
        progress = "not known yet" if report is None else f"{report['status']}, {report['percent_done']}% done"
        if args.wait and progress != last_progress:
            note(f"{args.request_id}: {progress}")  # on stderr: stdout keeps only the final report
            last_progress = progress
        if time.monotonic() >= deadline:
            if report is not None:
                _print_status(report, args.json)
            raise CliError(f"request {args.request_id!r} not finished after {args.timeout:g} s", EXIT_NOT_FOUND)
        time.sleep(min(args.interval, max(deadline - time.monotonic(), 0.01)))
    _print_status(report, args.json)
    return EXIT_OK


def _print_status(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
