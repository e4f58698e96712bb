"""Unit tests of the poller's adaptive next-poll time."""

from untag.activity import ActivityStatus
from untag.config import Config
from untag.poller import _interval
from untag.records import ActivityRecord

CONFIG = Config(token_secret_id="s", table_name="t", topic_arn="a")
NOW = 1_800_000_000.0


def activity_created(seconds_ago: float) -> ActivityRecord:
    return ActivityRecord(
        ActivityStatus("a-1", "processing"),
        ("r-1",),
        deadline_at=NOW - seconds_ago + CONFIG.activity_deadline_hours * 3600,
    )


def test_activities_of_the_last_minute_are_read_on_every_run():
    assert _interval(CONFIG, activity_created(1), NOW) == 0
    assert _interval(CONFIG, activity_created(59), NOW) == 0


def test_long_running_activities_are_read_less_often_but_at_least_every_minute():
    assert _interval(CONFIG, activity_created(100), NOW) == 10
    assert _interval(CONFIG, activity_created(3600), NOW) == CONFIG.max_poll_interval_seconds
