"""The shared rate limiter: calls at least one slot apart, whichever instance makes them, however long a slot takes to reserve."""

import itertools

import pytest
from untag.store import SharedRateLimiter


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Slots:
    """The table's slot items: a conditional put that takes ``put_seconds``."""

    def __init__(self, clock: Clock, put_seconds: float):
        self.clock, self.put_seconds, self.taken = clock, put_seconds, set()

    def reserve_slot(self, slot: int) -> bool:
        self.clock.sleep(self.put_seconds)
        if slot in self.taken:
            return False
        self.taken.add(slot)
        return True


def test_a_slot_that_begins_while_it_is_reserved_is_not_used():
    clock = Clock(1000.0 - 0.001)  # 1 ms before a slot begins; the put takes 5 ms
    slots = Slots(clock, put_seconds=0.005)
    limiter = SharedRateLimiter(slots, 4, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    assert clock.now == pytest.approx(1000.25)  # not 1000.004, late in the slot of 1000.0
    assert slots.taken == {4000, 4001}  # the begun slot stays taken, unused


def test_calls_of_two_instances_are_a_slot_apart():
    clock = Clock()
    slots = Slots(clock, put_seconds=0.005)
    first = SharedRateLimiter(slots, 4, clock=clock, sleep=clock.sleep)
    second = SharedRateLimiter(slots, 4, clock=clock, sleep=clock.sleep)
    starts = []
    for limiter in (first, second) * 6:
        limiter.acquire()
        starts.append(clock.now)
        clock.sleep(0.003)  # the call's own work before the next instance asks
    assert all(later - earlier >= 0.25 - 1e-9 for earlier, later in itertools.pairwise(starts))
    assert all(abs(round(start * 4) - start * 4) < 1e-6 for start in starts)  # each call at its slot's start


def test_a_put_slower_than_a_slot_takes_a_slot_far_enough_ahead():
    clock = Clock()
    slots = Slots(clock, put_seconds=1.0)  # DynamoDB having a slow moment
    limiter = SharedRateLimiter(slots, 4, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    assert clock.now == pytest.approx(1002.0)  # the second put asked for a slot a put's time ahead
    limiter.acquire()
    assert clock.now == pytest.approx(1003.0)


def test_a_limiter_never_spins_when_every_put_is_slower_than_the_last():
    clock = Clock()
    slots = Slots(clock, put_seconds=1.0)

    def slower(slot: int) -> bool:
        slots.put_seconds *= 2
        return Slots.reserve_slot(slots, slot)

    slots.reserve_slot = slower
    SharedRateLimiter(slots, 4, clock=clock, sleep=clock.sleep).acquire()
    assert len(slots.taken) == 1 + SharedRateLimiter.LATE_SLOTS_SKIPPED
