"""The shared rate limiter: at most ``per_second`` Constant Contact calls in ANY 1-second window,
across every instance of both functions.

Time is cut into slots; a call takes the next free slot with a conditional put in the table (one
DynamoDB write per call, so one slot serves one call whichever instance takes it), waits for the
slot's start, and must start within ``LATENESS`` of it, or it takes a later slot. Slots last
``(1 + LATENESS + CLOCK_SKEW) / per_second`` seconds, so the first and the last of any
``per_second + 1`` calls are at least a second apart: a late start, or instances whose clocks
differ by up to ``CLOCK_SKEW``, can never crowd a window. At 4 per second that is 3.92 calls a second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from untag.observability import count

LATENESS = 0.015  # a call starts at most this long after its slot's start (a resumed sleep: about 1 ms)
CLOCK_SKEW = 0.005  # Lambda clocks are kept in sync by the Amazon Time Sync Service to well under this
RESERVE_AHEAD = 0.05  # a DynamoDB conditional put takes well under this


class Slots(Protocol):
    def reserve_slot(self, slot: int) -> bool: ...


class SharedRateLimiter:
    def __init__(
        self,
        slots: Slots,
        per_second: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._slots = slots
        self._slot_seconds = (1.0 + LATENESS + CLOCK_SKEW) / per_second
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0

    def acquire(self) -> None:
        """Return when this instance may start one call."""
        ahead = RESERVE_AHEAD
        while True:
            # A slot far enough ahead that taking it (one write) leaves time to wait for its start.
            slot = max(self._next_slot, math.ceil((self._clock() + ahead) / self._slot_seconds))
            while not self._slots.reserve_slot(slot):
                slot += 1
            self._next_slot = slot + 1
            start = slot * self._slot_seconds
            wait = start - self._clock()
            if wait > 0:
                self._sleep(wait)
            if self._clock() <= start + LATENESS:
                return
            count("RateSlotsMissed")  # started too late for its slot (a slow write, a paused instance)
            ahead = min(ahead * 2, 5.0)  # writes are slow now: reserve further ahead (so this ends)
