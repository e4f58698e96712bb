"""The run loop: the event sources emulated turn by turn until every expected result event arrived."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from devkit.runner.display import PROGRESS_REFRESH_SECONDS, Display, Ticker
from devkit.runner.inputs import RunnerError
from devkit.runner.tracker import Tracker


@dataclass
class Outcome:
    finished: bool
    reason: str = ""  # "timeout", "lost", "interrupted"
    poller_errors: list[str] = field(default_factory=list)


def drive(pipeline: Any, tracker: Tracker, display: Display, *, poll_interval: float, timeout: float) -> Outcome:
    """Emulate the event sources until every expected event arrived, the rest can never come, or time is up.

    Each turn: one event source mapping poll (an intake invocation if the queue has messages), the
    poller when its schedule is due, then the result events. Sequential, like one concurrent slot each.
    """
    import traceback

    outcome = Outcome(finished=False)
    started = time.monotonic()
    deadline = started + timeout
    next_poll = started
    next_refresh = started
    shown_errors = 0
    quiet_turns = 0
    try:
        with Ticker(tracker, display, pipeline):
            while True:
                took = pipeline.intake_once()
                for error in pipeline.intake_errors[shown_errors:]:
                    display.log("intake function error (the batch will be retried):\n" + error.rstrip())
                shown_errors = len(pipeline.intake_errors)
                if time.monotonic() >= next_refresh:
                    reading = time.monotonic()
                    tracker.refresh()
                    # moto runs in this process: keep the display's share of the work small on big runs
                    next_refresh = time.monotonic() + max(PROGRESS_REFRESH_SECONDS, 5 * (time.monotonic() - reading))
                if time.monotonic() >= next_poll:
                    try:
                        pipeline.poll_once()
                    except Exception:  # noqa: BLE001 - a failed scheduled run: the next tick is the retry
                        outcome.poller_errors.append(traceback.format_exc())
                        display.log(
                            "poller function error (the next run retries):\n" + outcome.poller_errors[-1].rstrip()
                        )
                    next_poll = time.monotonic() + poll_interval
                pipeline.collect_results()
                tracker.take(pipeline.results)
                if tracker.complete:
                    outcome.finished = True
                    return outcome
                if time.monotonic() >= deadline:
                    outcome.reason = "timeout"
                    return outcome
                # A message that left the queue unaccepted (to the dead-letter queue) never yields an event.
                if not took and pipeline.queue_depth() == 0:
                    tracker.refresh(tracker.lost())  # a record, once written, stays: re-read only the unknown
                    quiet_turns = quiet_turns + 1 if len(tracker.lost()) == len(tracker.missing) else 0
                    if quiet_turns >= 2:
                        outcome.reason = "lost"
                        return outcome
                else:
                    quiet_turns = 0
                if not took:
                    time.sleep(max(0.0, min(next_poll, deadline) - time.monotonic()))
    except KeyboardInterrupt:
        outcome.reason = "interrupted"
        return outcome


def check_fresh(tracker: Tracker) -> None:
    """Refuse requests the table already knows: the service would ignore them and no event would come."""
    tracker.refresh(list(tracker.expected))
    known = [key for key, record in tracker.records.items() if record is not None]
    if known:
        shown = ", ".join(tracker.expected[key].request_id for key in known[:5])
        raise RunnerError(
            f"{len(known)} of these requests were already processed by this stack ({shown}"
            f"{', ...' if len(known) > 5 else ''}); the service would ignore them as duplicates, "
            "so no result event would come. Use new request ids."
        )
