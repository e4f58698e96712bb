"""Bounded work per poller run: a run that runs short of Lambda time leaves the rest for the next one."""

import json
from dataclasses import dataclass

from devkit.pipeline import LambdaContext, scheduled_event


@dataclass
class CountdownContext(LambdaContext):
    """Reports plenty of time for the first ``looks`` looks, then almost none."""

    looks: int = 0

    def get_remaining_time_in_millis(self) -> int:
        self.looks -= 1
        return 60_000 if self.looks >= 0 else 100


def test_a_run_that_runs_out_of_time_finishes_the_rest_on_the_next_run(pipeline, simulator):
    # Given 30 small requests that share one activity, which Constant Contact has finished
    pipeline.submit(
        [
            json.dumps({"request_id": f"r-{n}", "source": {"contact_ids": [f"c{n}"]}, "tag_ids": ["t1"]})
            for n in range(30)
        ]
    )
    while pipeline.intake_once():
        pass
    assert simulator.count("POST", status=201) == 3  # batches of 10 in this fixture: one shared activity each
    # When a poller run has time for only a few requests
    pipeline.poller(scheduled_event("us-east-1"), CountdownContext("untag-poller", 120, looks=12))
    pipeline.poller(scheduled_event("us-east-1"), CountdownContext("untag-poller", 120, looks=12))
    first = len({e["request_id"] for e in pipeline.collect_results()})
    # Then it stopped early, and later runs finish every request exactly once
    assert first < 30
    for _ in range(10):
        pipeline.poll_once()
    events = pipeline.collect_results()
    assert sorted(e["request_id"] for e in events) == sorted(f"r-{n}" for n in range(30))
    assert all(e["state"] == "completed" for e in events)
