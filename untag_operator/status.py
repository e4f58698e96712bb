"""`untag status`: everything the activity table knows of one request, once or until it is finished."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from untag.activity import TERMINAL_STATES
from untag.store import ActivityStore, request_key
from untag_operator.console import EXIT_NOT_FOUND, EXIT_OK, CliError, note
from untag_operator.target import Target, resolve_target


def request_report(target: Target, request_id: str) -> dict[str, Any]:
    """Everything the table knows of one request: the request, its activities, progress, result."""
    store = target.store()
    item = store.get_request(request_id)
    rejections = _rejections(target, request_id)
    if item is None and not rejections:
        raise CliError(
            f"unknown request id {request_id!r}: not in table {target.output('ActivityTableName')} (a request just "
            f"sent may still wait in the intake queue's batching window; finished ones expire after RetentionDays)",
            EXIT_NOT_FOUND,
        )
    report: dict[str, Any] = {"request_id": request_id}
    if item is not None:
        report.update(_accepted(store, item))
    if rejections:
        report["rejections"] = rejections
        if item is None:
            report.update(status="rejected", state="rejected", percent_done=100, event=rejections[-1])
    return report


def _rejections(target: Target, request_id: str) -> list[dict[str, Any]]:
    """The rejected events stored under this request id (``REQUEST#<id>`` / ``REJECTED#<key>``)."""
    answer = target.client("dynamodb").query(
        TableName=target.output("ActivityTableName"),
        ConsistentRead=True,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :rejected)",
        ExpressionAttributeValues={":pk": {"S": request_key(request_id)["pk"]}, ":rejected": {"S": "REJECTED#"}},
    )
    deserializer = TypeDeserializer()
    return [json.loads(deserializer.deserialize(item["event"])) for item in answer.get("Items", ())]


def _accepted(store: ActivityStore, item: dict[str, Any]) -> dict[str, Any]:
    chunks = sorted(((int(index), activity_id) for index, activity_id in (item.get("activities") or {}).items()))
    records = store.get_activities({activity_id for _, activity_id in chunks})
    activities = []
    for index, activity_id in chunks:
        record = records.get(activity_id, {"activity_id": activity_id, "state": "unknown", "percent_done": 0})
        activities.append(
            {
                "index": index,
                **{
                    key: record.get(key)
                    for key in (
                        "activity_id",
                        "state",
                        "percent_done",
                        "items_total_count",
                        "items_completed_count",
                        "errors",
                        "created_at",
                        "completed_at",
                    )
                },
                "shared_with": [r for r in record.get("request_ids", ()) if r != item["request_id"]],
            }
        )
    creation_errors = [
        message for _, message in sorted((item.get("creation_errors") or {}).items(), key=lambda entry: int(entry[0]))
    ]
    planned = int(item.get("planned") or max(len(chunks), 1))
    event = json.loads(item["event"]) if item.get("event") else None
    if event is not None:
        percent = 100
    else:  # chunks not created yet count 0; a chunk Constant Contact refused is over
        done = sum(int(a["percent_done"] or 0) if a["state"] not in TERMINAL_STATES else 100 for a in activities)
        percent = int((done + 100 * len(creation_errors)) / planned)
    return {
        "status": item.get("status"),
        "state": event["state"] if event else None,
        "percent_done": percent,
        "source_type": item.get("source_type"),
        "tag_ids": item.get("tag_ids"),
        "metadata": json.loads(item["metadata"]) if item.get("metadata") else None,
        "received_at": item.get("received_at"),
        "finished_at": item.get("finished_at"),
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
    else:
        created = len(report["activities"]) + len(report["creation_errors"])
        lines.append(f"state      {report['status']} ({created} of {report['planned_activities']} activities created)")
    if report.get("status") != "rejected":
        lines += [
            f"received   {report.get('received_at')}",
            f"removes    {', '.join(report.get('tag_ids') or ())} (source {report.get('source_type')})",
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
