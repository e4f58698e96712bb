"""The Lambda time budget: how long an invocation may keep starting Constant Contact calls."""

from __future__ import annotations

import math
from typing import Any

RESERVE_SHARE = 0.2  # never keep back more than this share of the time the invocation started with
MINIMUM_RESERVE_SECONDS = 0.5  # but never start a call with less than this left


class TimeBudget:
    """Stops new work when less than the reserve is left, so a batch ends cleanly instead of being killed.

    The reserve is the configured one, but at most a fifth of the time the invocation had at its
    start (a 60 s Lambda keeps 10 s back; one that starts with 5 s keeps 1 s back) and at least
    half a second. A context without ``get_remaining_time_in_millis``, or one that reports 0 at
    the start (test stand-ins; a real invocation never starts with 0 ms), has unlimited time.

    With ``run_seconds`` (the poller) calls are started for at most that long, and the reserve
    follows: the last call ends within ``run_seconds`` + the reserve (50 + 10 s: before the next
    1-minute tick). The reserve is not taken out of ``run_seconds`` too: that stopped the
    poller's calls at 40 s and left the rate limit unused for a third of every minute.
    """

    def __init__(self, context: Any, reserve_seconds: float, *, run_seconds: float | None = None):
        self._context = context
        self._cut = 0.0
        start = self.remaining()
        if start <= 0:
            self._context = None
            start = float("inf")
        self.reserve = min(reserve_seconds, max(MINIMUM_RESERVE_SECONDS, start * RESERVE_SHARE))
        if run_seconds is not None and run_seconds + self.reserve < start < float("inf"):
            self._cut = start - run_seconds - self.reserve  # calls stop ``run_seconds`` from now

    def remaining(self) -> float:
        if self._context is None:
            return float("inf")
        try:
            millis = self._context.get_remaining_time_in_millis()
        except Exception:  # noqa: BLE001 - no usable context: no limit
            return float("inf")
        if not isinstance(millis, (int, float)) or isinstance(millis, bool):
            return float("inf")
        return millis / 1000 - self._cut

    def lambda_remaining(self) -> float:
        """The time the Lambda itself has left (the run's own end, ``run_seconds``, not counted)."""
        return self.remaining() + self._cut

    def exhausted(self) -> bool:
        return self.remaining() < self.reserve

    def lease_seconds(self) -> float:
        """How long a claim taken now must hold: to the end of this invocation, capped for unknown budgets."""
        return min(self.remaining(), 900.0) + 5.0


def next_utc_midnight(now: float) -> float:
    """When a spent daily quota is renewed (Constant Contact's day resets at 00:00 UTC)."""
    return (math.floor(now / 86400) + 1) * 86400.0
