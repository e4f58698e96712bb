"""The burst emulation `make bench` measures (devkit/virtual/), at a small scale: the event flow in virtual time.

Each test runs the deployed flow (moto SQS with the template's queues, the event source mapping,
the poller's schedule, the simulator enforcing 4 calls a second on the virtual clock) for a few
dozen requests, and checks the counts the bench reports. No assertion is on real time.
"""

from __future__ import annotations

from devkit.virtual import VirtualClock, max_calls_in_window, run_burst


def test_a_burst_of_own_tag_requests_drains_within_the_rate_limit():
    result = run_burst(60)
    assert result.errors == []
    assert result.drained_seconds is not None
    assert result.posts == 60 and result.duplicate_posts == 0  # one activity per request, none twice
    assert result.requests_left_creating == 0
    assert result.dlq_depth == 0 and result.queue_depth == 0
    assert result.max_receives == 1
    assert result.max_calls_in_one_second <= 4 and result.throttled == 0
    assert result.over_timeout == 0 and result.skipped_ticks == 0
    # 60 messages are less than a batch: the event source waits its batching window (30 s) first
    assert result.drained_seconds >= result.settings["intake_batching_window_seconds"] + 60 / 4


def test_the_simulator_throttles_a_service_that_calls_faster_than_4_a_second_in_virtual_time():
    result = run_burst(60, environment={"CC_REQUESTS_PER_SECOND": "20"})
    assert result.errors == []
    assert result.throttled > 0 and result.max_calls_in_one_second > 4  # the emulation sees what it must prevent


def test_records_left_for_redelivery_come_back_after_the_visibility_timeout_as_another_receive():
    # An intake with 1 s (instead of 60) and 10 ms AWS calls reads about 50 records, leaves the rest to SQS
    result = run_burst(60, aws_latency=0.01, intake_timeout=1.0)
    assert result.errors == []
    assert result.receives[2] > 0 and result.max_receives <= 3
    assert result.drained_seconds > result.settings["visibility_timeout_seconds"]
    assert result.posts == 60 and result.duplicate_posts == 0
    assert result.dlq_depth == 0 and result.requests_left_creating == 0
    assert result.max_calls_in_one_second <= 4 and result.throttled == 0


def test_calls_per_second_are_counted_in_half_open_windows():
    assert max_calls_in_window([0.0, 0.25, 0.5, 0.75, 1.0, 1.25]) == 4
    assert max_calls_in_window([0.0, 0.25, 0.5, 0.75, 0.999999]) == 5


def test_the_virtual_clock_runs_one_thread_at_a_time_and_moves_to_the_earliest_wake_up():
    clock = VirtualClock(100.0)
    seen: list[tuple[str, float]] = []

    def sleeper(name: str, pauses: list[float]) -> None:
        for pause in pauses:
            clock.sleep(pause)
            seen.append((name, clock.now()))

    clock.spawn(lambda: sleeper("a", [1.0, 1.0]), "a")
    clock.spawn(lambda: sleeper("b", [0.5, 2.0]), "b")
    clock.run()
    assert seen == [("b", 100.5), ("a", 101.0), ("a", 102.0), ("b", 102.5)]
    assert clock.errors == []
