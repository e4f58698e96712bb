"""Fixtures of the simulator tests: simulators started on demand (and stopped after), a settable clock."""

from __future__ import annotations

import pytest

from devkit.simulator import ConstantContactSimulator
from tests.simulator.contact_helpers import START


@pytest.fixture
def make_sim():
    started: list[ConstantContactSimulator] = []

    def make(**kwargs) -> ConstantContactSimulator:
        kwargs.setdefault("rate_limit_per_second", None)
        sim = ConstantContactSimulator(**kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def clock():
    now = [START]
    return now


@pytest.fixture
def sim(make_sim, clock):
    """A simulator on a virtual clock that starts at START and moves only when a test moves it."""
    return make_sim(clock=lambda: clock[0])
