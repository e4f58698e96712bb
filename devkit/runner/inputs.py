"""What a run sends: the sample requests of events/, a JSON-lines file, or a generated load."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = ROOT / "events"
SAMPLE_EVENT_FILES = ("intake-sqs-batch.json", "intake-names-and-emails.json", "intake-invalid.json")


class RunnerError(Exception):
    """A problem with the arguments or the input, reported without a traceback."""


# --------------------------------------------------------------------------- inputs


def sample_requests() -> list[str]:
    """The request bodies of the sample SQS events in events/ (every source type, a split one, names and
    addresses, previews, invalid ones)."""
    bodies: list[str] = []
    for name in SAMPLE_EVENT_FILES:
        event = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
        bodies.extend(record["body"] for record in event["Records"])
    return bodies


def read_requests(path: str | os.PathLike[str]) -> list[str]:
    """The message bodies of a JSON-lines file: one untag request per line, blank lines skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RunnerError(f"cannot read the requests file {path}: {error}") from None
    bodies = [line.strip() for line in text.splitlines() if line.strip()]
    if not bodies:
        raise RunnerError(f"the requests file {path} holds no requests")
    return bodies


def generate_requests(count: int, run_id: str) -> list[str]:
    """``count`` single-contact requests removing one tag (they share activities), then four of other kinds."""
    tag = "t-generated"
    bodies = [
        {
            "request_id": f"gen-{run_id}-{n:06d}",
            "source": {"contact_ids": [f"c-gen-{n:06d}"]},
            "tag_ids": [tag],
            "metadata": {"generated": n},
        }
        for n in range(1, count + 1)
    ]
    bodies += [
        {
            "request_id": f"gen-{run_id}-lists",
            "source": {"list_ids": ["l-generated-1", "l-generated-2"]},
            "exclude": {"contact_ids": ["c-gen-keep"]},
            "tag_ids": [tag],
        },
        {
            "request_id": f"gen-{run_id}-everyone",
            "source": {"all_active_contacts": True},
            "tag_ids": ["t-generated-old"],
        },
        {"request_id": f"gen-{run_id}-tagged", "source": {"tag_ids": ["t-generated-source"]}, "tag_ids": [tag]},
        {
            "request_id": f"gen-{run_id}-invalid",
            "source": {"contact_ids": ["c-1"], "list_ids": ["l-1"]},
            "tag_ids": [tag],
        },
    ]
    return [json.dumps(body, separators=(",", ":")) for body in bodies]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def load_bodies(args: argparse.Namespace) -> tuple[list[str], str]:
    if args.requests:
        bodies = read_requests(args.requests)
        not_json = sum(1 for body in bodies if not _is_json(body))
        if not_json:
            print(
                f"note: {not_json} line(s) of {args.requests} are not JSON; they are sent as they are and the "
                "service rejects them",
                file=sys.stderr,
            )
        return bodies, f"{len(bodies):,} requests from {args.requests}"
    if args.generate:
        bodies = generate_requests(args.generate, f"{args.seed:06d}")
        return bodies, f"{len(bodies):,} generated requests ({args.generate:,} single-contact + 4 others)"
    bodies = sample_requests()
    return bodies, f"{len(bodies)} sample requests from events/{' and events/'.join(SAMPLE_EVENT_FILES)}"
