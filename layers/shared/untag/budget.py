"""The Lambda time budget: how long an invocation may keep starting Constant Contact calls."""

from __future__ import annotations

from typing import Any

RESERVE_SHARE = 0.2  # never keep back more than this share of the time the invocation started with


class TimeBudget:
    """Stops new work when less than the reserve is left, so a batch ends cleanly instead of being killed.

    The reserve is the configured one, but at most a fifth of the time the invocation had at its
    start (a 60 s Lambda keeps 10 s back; a context that reports 1 s keeps 0.2 s back). A context
    without ``get_remaining_time_in_millis`` is treated as having unlimited time.
    """

    def __init__(self, context: Any, reserve_seconds: float):
        self._context = context
        start = self.remaining()
        self.reserve = min(reserve_seconds, start * RESERVE_SHARE)

    def remaining(self) -> float:
        try:
            millis = self._context.get_remaining_time_in_millis()
        except Exception:  # noqa: BLE001 - no usable context: no limit
            return float("inf")
        return millis / 1000 if isinstance(millis, (int, float)) and not isinstance(millis, bool) else float("inf")

    def exhausted(self) -> bool:
        return self.remaining() < self.reserve

    def lease_seconds(self) -> float:
        """How long a claim taken now must hold: to the end of this invocation, capped for unknown budgets."""
        return min(self.remaining(), 900.0) + 5.0
