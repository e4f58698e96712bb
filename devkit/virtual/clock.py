"""Virtual time for cooperating threads: one runs at a time, the clock jumps to the earliest wake-up."""

from __future__ import annotations

import heapq
import itertools
import threading
import traceback
from collections.abc import Callable

START = 1_900_000_000.0  # virtual epoch of the burst (2030-03-17T17:46:40Z): whole seconds, far from midnight UTC


class VirtualClock:
    """Virtual epoch seconds shared by cooperating threads (``spawn``), one running at a time.

    ``sleep`` hands the turn to the thread that wakes up first; the clock jumps to its wake-up
    time. Time is kept in whole microseconds so that rate-limiter slots land exactly.
    """

    def __init__(self, start: float = START):
        self._micros = round(start * 1_000_000)
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._turns: dict[int, threading.Condition] = {}
        self._waiting: list[tuple[int, int, int]] = []  # (wake-up micros, order, thread id)
        self._order = itertools.count()
        self._ids = itertools.count(1)
        self._running: int | None = None
        self._live = 0
        self._local = threading.local()
        self.errors: list[str] = []  # tracebacks of threads that raised

    def now(self) -> float:
        return self._micros / 1_000_000

    def sleep(self, seconds: float) -> None:
        me = getattr(self._local, "id", None)
        if me is None:
            raise RuntimeError("a virtual sleep outside the clock's threads")
        with self._lock:
            self._wait_turn(me, self._micros + max(0, round(seconds * 1_000_000)))

    def spawn(self, target: Callable[[], None], name: str) -> None:
        """Start ``target`` on a new thread, at the current virtual time (from the main thread or a clock thread)."""
        with self._lock:
            me = next(self._ids)
            self._turns[me] = threading.Condition(self._lock)
            self._live += 1
            heapq.heappush(self._waiting, (self._micros, next(self._order), me))
        threading.Thread(target=self._body, args=(me, target), name=name, daemon=True).start()

    def run(self) -> None:
        """Give the first turn and wait until every spawned thread has returned."""
        with self._lock:
            if self._running is None:
                self._hand_over()
            while self._live:
                self._finished.wait()

    def _body(self, me: int, target: Callable[[], None]) -> None:
        self._local.id = me
        with self._lock:
            while self._running != me:
                self._turns[me].wait()
        try:
            target()
        except BaseException:  # noqa: BLE001 - reported by the caller; the other threads go on
            self.errors.append(traceback.format_exc())
        finally:
            with self._lock:
                self._live -= 1
                del self._turns[me]
                self._hand_over()
                if not self._live:
                    self._finished.notify_all()

    def _wait_turn(self, me: int, wake: int) -> None:
        heapq.heappush(self._waiting, (wake, next(self._order), me))
        self._hand_over()
        while self._running != me:
            self._turns[me].wait()

    def _hand_over(self) -> None:
        if not self._waiting:
            self._running = None
            return
        wake, _, chosen = heapq.heappop(self._waiting)
        self._micros = max(self._micros, wake)
        self._running = chosen
        self._turns[chosen].notify()
