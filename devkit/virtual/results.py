"""What a burst emulation reports: each invocation, the counts ``make bench`` prints, calls in a window."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def max_calls_in_window(times: list[float], window: float = 1.0) -> int:
    """The most calls in any half-open window [t, t + window) (times in seconds; counted in microseconds)."""
    stamps = sorted(round(t * 1_000_000) for t in times)
    span = round(window * 1_000_000)
    most, first = 0, 0
    for last, stamp in enumerate(stamps):
        while stamp - stamps[first] >= span:
            first += 1
        most = max(most, last - first + 1)
    return most


@dataclass
class Invocation:
    function: str  # "intake" or "poller"
    instance: str
    started: float  # virtual seconds since the burst
    ended: float
    records: int = 0
    failed: int = 0
    posts: int = 0  # activities this invocation created
    first_post: float | None = None  # seconds after its start its first / last create call ended
    last_post: float | None = None
    error: str = ""
    over_timeout: bool = False  # it ran past its function's Timeout (Lambda would have ended it)

    def note_calls(self, calls: list[tuple[str, float]], start: float) -> None:
        ends = [at - start for name, at in calls if name == "create_tag_removal"]
        self.posts = len(ends)
        self.first_post, self.last_post = (min(ends), max(ends)) if ends else (None, None)


@dataclass
class BurstResult:
    requests: int
    requests_per_second: float
    drained_seconds: float | None  # virtual seconds from the burst to the last activity created (None: not drained)
    physical_limit_seconds: float
    posts: int  # POSTs Constant Contact answered 201
    duplicate_posts: int  # of those, POSTs for a request that already had its activity
    throttled: int  # 429 answers
    gets: int
    max_calls_in_one_second: int
    dlq_depth: int
    queue_depth: int  # messages still in the intake queue at the end
    max_receives: int
    receives: Counter[int] = field(default_factory=Counter)  # receive count -> messages
    invocations: list[Invocation] = field(default_factory=list)
    over_timeout: int = 0  # invocations that ran past their function's Timeout (Lambda would have killed them)
    skipped_ticks: int = 0  # schedule ticks that fell during a poller run
    requests_left_creating: int = 0  # requests still on the creation work list at the end
    errors: list[str] = field(default_factory=list)
    real_seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if self.drained_seconds is None else self.drained_seconds / self.physical_limit_seconds

    def idle_seconds(self) -> float:
        """Virtual seconds before the drain during which no function was running."""
        end = self.drained_seconds or 0.0
        covered, reach = 0.0, 0.0
        for started, ended in sorted((i.started, i.ended) for i in self.invocations):
            started, ended = max(started, reach), min(ended, end)
            if ended > started:
                covered += ended - started
                reach = ended
        return end - covered
