"""Activity states, what Constant Contact tells about an activity, and the rollup of a request's state.

Pure code. An activity moves ``initialized -> processing -> completed | failed | cancelled |
timed_out``; a request is ``completed`` only if every one of its activities completed, else it
takes the first of ``failed``, ``timed_out``, ``cancelled`` that any activity ended in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

ERRORS_KEPT = 20  # Constant Contact's activity_errors kept per activity (it may list one per refused contact)
ERROR_TEXT_MAX = 300
ACTIVE_STATES = ("initialized", "processing")
TERMINAL_STATES = ("completed", "failed", "cancelled", "timed_out")
REQUEST_FAILURE_ORDER = ("failed", "timed_out", "cancelled")


@dataclass(frozen=True)
class ActivityStatus:
    """What is known of one activity, in the result event's words."""

    activity_id: str
    state: str
    percent_done: int = 0
    items_total_count: int | None = None
    items_completed_count: int | None = None
    errors: tuple[str, ...] = field(default=())
    created_at: str | None = None
    completed_at: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def from_api(cls, body: dict[str, Any], activity_id: str | None = None) -> ActivityStatus:
        """Read Constant Contact's Activity / ActivityTagging schema, tolerating missing fields."""
        status = body.get("status") if isinstance(body.get("status"), dict) else {}
        state = body.get("state")
        if state == "time_out":  # one spelling in Constant Contact's own prose
            state = "timed_out"
        if state not in ACTIVE_STATES + TERMINAL_STATES:
            state = "processing"
        return cls(
            activity_id=str(body.get("activity_id") or activity_id),
            state=state,
            percent_done=_int(body.get("percent_done")) or 0,
            items_total_count=_int(status.get("items_total_count")),
            items_completed_count=_int(status.get("items_completed_count")),
            errors=_errors(body.get("activity_errors")),
            created_at=body.get("created_at"),
            completed_at=body.get("completed_at"),
        )

    def ended(self, state: str, reason: str, at: str) -> ActivityStatus:
        """This activity ended by the service's decision (deadline passed, unknown to Constant Contact)."""
        return ActivityStatus(**{**asdict(self), "state": state, "errors": self.errors + (reason,), "completed_at": at})

    def as_event(self) -> dict[str, Any]:
        event = asdict(self)
        event["errors"] = list(self.errors)
        return event


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _errors(errors: Any) -> tuple[str, ...]:
    """The first ``ERRORS_KEPT`` of Constant Contact's activity errors, and how many more there were."""
    if not isinstance(errors, list):
        return ()
    kept = tuple(_error_text(error) for error in errors[:ERRORS_KEPT])
    if len(errors) > ERRORS_KEPT:
        kept += (f"... and {len(errors) - ERRORS_KEPT} more errors",)
    return kept


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message") or error.get("error_message") or error
    text = str(error)
    return text if len(text) <= ERROR_TEXT_MAX else text[: ERROR_TEXT_MAX - 3] + "..."


def request_state(activity_states: Iterable[str]) -> str:
    """Roll the final states of a request's activities up into the request's final state."""
    states = set(activity_states)
    if not states or states == {"completed"}:
        return "completed" if states else "failed"
    for state in REQUEST_FAILURE_ORDER:
        if state in states:
            return state
    raise ValueError(f"not every activity is final: {sorted(states)}")
