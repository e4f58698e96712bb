"""The shared rate limiter holds the cap in ANY 1-second window, across instances, whatever the lateness."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from untag.rate import CLOCK_SKEW, SharedRateLimiter


class Slots:
    """The table's slot items: each slot taken once (a conditional put)."""

    def __init__(self):
        self.taken: set[int] = set()

    def reserve_slot(self, slot: int) -> bool:
        if slot in self.taken:
            return False
        self.taken.add(slot)
        return True


class Instance:
    """One Lambda instance: its own clock (skewed from true time), its sleeps overshooting as told."""

    def __init__(self, slots: Slots, per_second: float, skew: float, start: float):
        self.true_now = start
        self.skew = skew
        self.overshoot = 0.0
        self.limiter = SharedRateLimiter(slots, per_second, clock=self.clock, sleep=self.sleep)

    def clock(self) -> float:
        return self.true_now + self.skew

    def sleep(self, seconds: float) -> None:
        self.true_now += seconds + self.overshoot
        self.overshoot = 0.0  # a pause (a slow write, the scheduler) hits one wait, not every one

    def call(self, overshoot: float) -> float:
        self.overshoot = overshoot
        self.limiter.acquire()
        return self.true_now  # the call starts now (true time)


def busiest_second(starts: list[float]) -> int:
    starts = sorted(starts)
    return max(sum(1 for other in starts[index:] if other < start + 1.0) for index, start in enumerate(starts))


@settings(max_examples=300, deadline=None)
@given(
    per_second=st.sampled_from([1, 2, 3, 4]),
    skews=st.lists(st.floats(-CLOCK_SKEW / 2, CLOCK_SKEW / 2), min_size=3, max_size=3),
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from([0.0, 0.001, 0.01, 0.039, 0.04, 0.041, 0.2]), st.floats(0, 0.6)),
        min_size=5,
        max_size=60,
    ),
)
def test_no_second_ever_holds_more_calls_than_the_cap(per_second, skews, steps):
    slots = Slots()
    instances = [Instance(slots, per_second, skew, start=1_000_000.0) for skew in skews]
    starts = []
    for index, overshoot, work in steps:
        instance = instances[index]
        starts.append(instance.call(overshoot))
        instance.true_now += work  # the call itself, and whatever the instance does next
    assert busiest_second(starts) <= per_second


def test_the_cap_costs_little_throughput():
    slots = Slots()
    instance = Instance(slots, 4, 0.0, start=1_000_000.0)
    starts = [instance.call(0.0) for _ in range(401)]
    rate = 400 / (starts[-1] - starts[0])
    assert 3.75 < rate <= 4.0


def test_slow_slot_writes_make_it_reserve_further_ahead_instead_of_spinning():
    slots = Slots()
    instance = Instance(slots, 4, 0.0, start=1_000_000.0)
    reserve = slots.reserve_slot

    def slow_reserve(slot: int) -> bool:  # every write takes 0.3 s, longer than the reserve-ahead margin
        instance.true_now += 0.3
        return reserve(slot)

    slots.reserve_slot = slow_reserve
    starts = [instance.call(0.0) for _ in range(20)]
    assert busiest_second(starts) <= 4
    assert len(slots.taken) < 20 * 4  # a few missed slots, not an endless loop
