"""Unit tests of the poller's adaptive next-poll time, read from the work list a poller run leaves."""

from tests.unit.fakes import Services, budget
from untag.activity import ActivityStatus
from untag.poller import poll
from untag.records import ActivityRecord


def next_poll_after(seconds_since_creation: float) -> float:
    """Seconds until the poller looks again at a still-processing activity it read ``seconds_since_creation``
    after its creation."""
    services = Services()
    now = services.clock()
    services.store.activities["a-1"] = ActivityRecord(
        ActivityStatus("a-1", "processing"),
        ("r-1",),
        deadline_at=now - seconds_since_creation + services.config.activity_deadline_hours * 3600,
        due_at=now,
    )
    services.constant_contact.states["a-1"] = "processing"
    poll(services, budget(services))
    assert services.constant_contact.calls, "the poller did not read the activity"
    return services.store.activities["a-1"].due_at - now


def test_activities_of_the_last_minute_are_read_on_every_run():
    assert next_poll_after(1) == 0
    assert next_poll_after(59) == 0


def test_long_running_activities_are_read_less_often_but_at_least_every_minute():
    assert next_poll_after(100) == 10
    assert next_poll_after(3600) == Services().config.max_poll_interval_seconds
