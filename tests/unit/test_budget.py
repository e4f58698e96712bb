"""The time budget: when an invocation stops starting Constant Contact calls."""

from untag.budget import TimeBudget


class Context:
    """A Lambda context whose clock the test moves."""

    def __init__(self, seconds: int):
        self.millis = seconds * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def seconds_of_calls(context: Context, budget: TimeBudget) -> float:
    """The last moment (seconds after the start, to a tenth) at which the budget lets a call start."""
    start = context.millis
    while not budget.exhausted():
        context.millis -= 100
    return (start - context.millis - 100) / 1000


def test_an_intake_stops_calls_when_its_reserve_is_left():
    context = Context(60)
    assert seconds_of_calls(context, TimeBudget(context, 10)) == 50.0


def test_a_poller_run_starts_calls_for_its_run_seconds_and_keeps_the_reserve_after_them():
    context = Context(120)
    budget = TimeBudget(context, 10, run_seconds=50)
    assert budget.reserve == 10
    assert seconds_of_calls(context, budget) == 50.0  # its last call ends by 60 s, the next tick
    assert context.millis / 1000 > budget.reserve  # and long before the Lambda would end it


def test_a_run_cut_never_extends_an_invocation_that_has_less_time():
    context = Context(40)
    budget = TimeBudget(context, 10, run_seconds=50)
    assert seconds_of_calls(context, budget) == 32.0  # a fifth of 40 s kept back, as without a cut
