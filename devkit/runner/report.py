"""What a run prints at its end: the result events, a summary, the Constant Contact calls, or why it failed."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, TextIO

from devkit.runner.environment import Aws, ConstantContact
from devkit.runner.loop import Outcome
from devkit.runner.tracker import Tracker

EVENTS_SHOWN_IN_FULL = 40  # more result events than this: only the first EVENTS_SHOWN_WHEN_MANY are printed
EVENTS_SHOWN_WHEN_MANY = 10
STATE_ORDER = ("completed", "previewed", "failed", "timed_out", "cancelled", "rejected")


def render_table(rows: list[tuple[Any, ...]], header: tuple[str, ...] | None = None, indent: str = "  ") -> str:
    """Columns aligned: text left, numbers right."""
    table = ([header] if header else []) + [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    numeric = [
        all(
            str(row[i]).replace(",", "").replace(".", "").isdigit() or row[i] == ""
            for row in table[1 if header else 0 :]
        )
        for i in range(len(widths))
    ]
    lines = []
    for row in table:
        cells = [
            str(cell).rjust(width) if is_number else str(cell).ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ]
        lines.append((indent + "  ".join(cells)).rstrip())
    return "\n".join(lines)


def cc_endpoint(method: str, path: str) -> str:
    from devkit.simulator import ACTIVITIES, TAGGINGS_REMOVE, TOKEN_PATH

    if path == TAGGINGS_REMOVE:
        return "create (POST contacts_taggings_remove)"
    if path == ACTIVITIES:
        return "list (GET activities)"
    if path.startswith(ACTIVITIES + "/"):
        return "get (GET activities/{id})"
    if path == TOKEN_PATH:
        return "token (POST oauth2 token)"
    if path.endswith("/contact_tags"):
        return "tags (GET contact_tags)"
    if path.endswith("/contacts"):
        return "contacts (GET contacts: sync, lookups, counts)"
    return f"{method} {path}"


def report(
    out: TextIO,
    *,
    tracker: Tracker,
    pipeline: Any,
    aws: Aws,
    cc: ConstantContact,
    outcome: Outcome,
    quiet: bool,
    elapsed: float,
    phases: dict[str, float],
    dlq_depth: int,
    dlq_before: int,
) -> None:
    events = [tracker.events[key] for key in tracker.expected if key in tracker.events]
    if not quiet and events:
        shown = events if len(events) <= EVENTS_SHOWN_IN_FULL else events[:EVENTS_SHOWN_WHEN_MANY]
        out.write(f"Result events ({len(events)})\n")
        for event in shown:
            out.write(json.dumps({k: v for k, v in event.items() if k != "_attributes"}, indent=2) + "\n")
        if len(shown) < len(events):
            out.write(f"... and {len(events) - len(shown)} more result events (--quiet hides them all)\n")
        out.write("\n")

    counts = tracker.counts()
    states = Counter(event.get("state") for event in events)
    rows: list[tuple[Any, ...]] = [("requests", f"{counts['total']:,}")]
    rows += [
        (f"  {state}", f"{states[state]:,}")
        for state in (*STATE_ORDER, *sorted(set(states) - set(STATE_ORDER)))
        if states[state]
    ]
    if tracker.missing:
        rows.append(("  no final state", f"{len(tracker.missing):,}"))
    rows.append(("activities created", f"{counts['activities']:,}"))
    calls = cc.simulator.calls if cc.simulator is not None else None
    if calls is not None:
        rows.append(("throttled (429)", f"{sum(1 for call in calls if call.status == 429):,}"))
    new_in_dlq = f" ({dlq_depth - dlq_before:+,} in this run)" if dlq_before else ""
    rows.append(("dead-letter queue depth", f"{dlq_depth:,}{new_in_dlq}"))
    rows.append(
        (
            "elapsed",
            f"{elapsed:.1f} s (" + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()) + ")",
        )
    )
    rows.append(("function runs", f"intake {pipeline.intake_invocations}, poller {pipeline.poller_invocations}"))
    if pipeline.intake_errors or outcome.poller_errors:
        rows.append(("function errors", f"intake {len(pipeline.intake_errors)}, poller {len(outcome.poller_errors)}"))
    if tracker.unexpected:
        rows.append(("other result events", f"{tracker.unexpected:,} (requests this run did not send)"))
    out.write("Summary\n" + render_table(rows) + "\n\n")

    if calls is None:
        out.write("Constant Contact calls: not recorded (real API; see the functions' ConstantContactCalls metric)\n")
    else:
        by_call = Counter((cc_endpoint(call.method, call.path), str(call.status or "dropped")) for call in calls)
        table = [(endpoint, status, f"{count:,}") for (endpoint, status), count in sorted(by_call.items())]
        table.append(("total", "", f"{len(calls):,}"))
        out.write("Constant Contact calls\n" + render_table(table, ("endpoint", "status", "calls")) + "\n")
        if cc.simulator.malformed:
            out.write(
                f"WARNING: the simulator refused {len(cc.simulator.malformed)} malformed call(s), e.g. "
                f"{cc.simulator.malformed[0]}\n"
            )
    out.write(f"\nAWS: {aws.description}\nConstant Contact: {cc.description}\n")
    out.flush()


def failure_message(tracker: Tracker, outcome: Outcome, timeout: float, dlq_depth: int) -> str:
    missing = tracker.missing
    ids = ", ".join(tracker.expected[key].request_id for key in missing[:5]) + (
        f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    )
    total = len(tracker.expected)
    if outcome.reason == "lost":
        return (
            f"FAILED: {len(missing)} of {total} requests can never reach a final state: their messages left "
            f"the intake queue without being accepted (dead-letter queue depth {dlq_depth}). Requests: {ids}"
        )
    why = "; ".join(f"{count} {reason}" for reason, count in tracker.waiting_reasons().most_common())
    if outcome.reason == "interrupted":
        return f"INTERRUPTED: {len(missing)} of {total} requests had not reached a final state ({why}). Requests: {ids}"
    return (
        f"FAILED: {len(missing)} of {total} requests reached no final state within the {timeout:g} s timeout "
        f"({why}; dead-letter queue depth {dlq_depth}). Requests: {ids}. A longer --timeout or a higher --speed "
        "may help."
    )
