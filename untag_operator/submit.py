"""`untag submit` and `untag preview`: build or read a request, validate it with the service's own reader, send it
to the intake queue; a preview (``dry_run``) then waits for its ``previewed`` event."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from untag.request import Rejection, UntagRequest, read_request
from untag_operator.console import EXIT_OK, EXIT_USAGE, CliError, note
from untag_operator.status import cmd_status
from untag_operator.target import resolve_target

MESSAGE_ID_FALLBACK = "<the SQS messageId>"  # can never be a valid request_id: read_request only falls back to it


def split_ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_request(args: argparse.Namespace) -> str:
    """The message body: the --file as it is, or a request built from the flags."""
    if args.file:
        names = ("remove_tags", "remove_tag_names", "exclude", "exclude_emails", "request_id", "metadata")
        flags = [name for name in names if getattr(args, name, None)]
        if flags:
            dropped = ", ".join("--" + flag.replace("_", "-") for flag in flags)
            raise CliError(f"--file already holds the whole request; drop {dropped}", EXIT_USAGE)
        try:
            return sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        except OSError as error:
            raise CliError(f"cannot read {args.file}: {error.strerror or error}", EXIT_USAGE) from None
    if not args.remove_tags and not args.remove_tag_names:
        raise CliError("--remove-tags T1,T2 or --remove-tag-names N1,N2 is required (the tags to remove)", EXIT_USAGE)
    if args.contacts:
        source: dict[str, Any] = {"contact_ids": split_ids(args.contacts)}
    elif args.emails:
        source = {"emails": split_ids(args.emails)}
    elif args.lists:
        source = {"list_ids": split_ids(args.lists)}
    elif args.tags:
        source = {"tag_ids": split_ids(args.tags)}
    elif args.all_active:
        source = {"all_active_contacts": True}
    else:
        source = {"new_subscriber": True}
    request: dict[str, Any] = {}
    if args.request_id:
        request["request_id"] = args.request_id
    request["source"] = source
    exclude = {"contact_ids": split_ids(args.exclude or ""), "emails": split_ids(args.exclude_emails or "")}
    if any(exclude.values()):
        request["exclude"] = {key: values for key, values in exclude.items() if values}
    if args.remove_tags:
        request["tag_ids"] = split_ids(args.remove_tags)
    if args.remove_tag_names:
        request["tag_names"] = split_ids(args.remove_tag_names)
    if args.metadata:
        try:
            request["metadata"] = json.loads(args.metadata)
        except ValueError as error:
            raise CliError(f"--metadata is not valid JSON: {error}", EXIT_USAGE) from None
    return json.dumps(request, separators=(",", ":"))


def cmd_submit(args: argparse.Namespace) -> int:
    body = build_request(args)
    outcome = _validate(body)
    if args.dry_run:
        print(body)
        note("valid; not sent (--dry-run)")
        return EXIT_OK
    print(_send(args, body, outcome))
    return EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    """Send the request as a dry run and print its ``previewed`` event: what it would do, nothing done."""
    request = json.loads(build_request(args))
    if not isinstance(request, dict) or "detail" in request or "Message" in request:
        raise CliError("untag preview takes a bare request (no EventBridge or SNS envelope)", EXIT_USAGE)
    body = json.dumps({**request, "dry_run": True}, separators=(",", ":"))
    request_id = _send(args, body, _validate(body))
    args.request_id, args.wait = request_id, True
    return cmd_status(args)


def _validate(body: str) -> UntagRequest:
    outcome = read_request(body, MESSAGE_ID_FALLBACK)
    if isinstance(outcome, Rejection):
        lines = "\n".join(f"  - {error}" for error in outcome.errors)
        raise CliError(f"the request is invalid, nothing was sent:\n{lines}", EXIT_USAGE)
    return outcome


def _send(args: argparse.Namespace, body: str, outcome: UntagRequest) -> str:
    """Send the body to the intake queue; the request id."""
    target = resolve_target(args)
    queue_url = target.output("IntakeQueueUrl")
    message_id = target.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"]
    request_id = message_id if outcome.request_id == MESSAGE_ID_FALLBACK else outcome.request_id
    note(f"sent to {queue_url} (message {message_id}); follow it: untag status {request_id} --wait")
    return request_id
