"""The burst (scenario 6): 3,000 single-contact requests, each with its own tag (nothing shareable), in
VIRTUAL time (devkit/virtual): the deployed event flow emulated (SQS event source mapping, schedule,
visibility timeout, redrive policy), the simulator enforcing 4 calls a second on the same clock.

Target: drained within 1.15 x the physical limit (3,000 POSTs at 4 a second = 750 s), the DLQ empty,
no message received more than 3 times, no call over 4 in any second.
"""

from __future__ import annotations

import statistics

from bench import Row

REQUESTS = 3000
TARGET_RATIO = 1.15
KEY = "burst_3000_distinct_tags_virtual_time"


def measure() -> dict:
    from devkit.virtual import run_burst

    result = run_burst(REQUESTS)
    if result.errors:
        raise RuntimeError("the burst emulation failed:\n" + "\n".join(result.errors))
    intakes = [i for i in result.invocations if i.function == "intake"]
    pollers = [i for i in result.invocations if i.function == "poller"]
    creating = [i for i in pollers if i.posts]
    return {
        KEY: {
            "requests": result.requests,
            "requests_per_second": result.requests_per_second,
            "physical_limit_seconds": result.physical_limit_seconds,
            "drained_virtual_seconds": None if result.drained_seconds is None else round(result.drained_seconds, 2),
            "ratio_to_physical_limit": None if result.ratio is None else round(result.ratio, 3),
            "target_ratio": TARGET_RATIO,
            "dlq_depth": result.dlq_depth,
            "intake_queue_depth_at_end": result.queue_depth,
            "max_receives": result.max_receives,
            "messages_by_receives": {str(count): messages for count, messages in sorted(result.receives.items())},
            "posts": result.posts,
            "duplicate_posts": result.duplicate_posts,
            "throttled_429": result.throttled,
            "gets": result.gets,
            "max_calls_in_any_1s_window": result.max_calls_in_one_second,
            "requests_left_on_creation_list": result.requests_left_creating,
            "invocations_over_timeout": result.over_timeout,
            "poller_ticks_skipped": result.skipped_ticks,
            "seconds_no_function_running": round(result.idle_seconds(), 1),
            "intake_invocations": [
                {
                    "start": round(i.started, 2),
                    "end": round(i.ended, 2),
                    "records": i.records,
                    "failed": i.failed,
                    "posts": i.posts,
                }
                for i in intakes
            ],
            "poller_runs": len(pollers),
            "poller_posts_per_creating_run": round(sum(i.posts for i in creating) / len(creating), 1)
            if creating
            else 0,
            "poller_median_first_post_after_start_seconds": round(statistics.median(i.first_post for i in creating), 2)
            if creating
            else None,
            "poller_median_last_post_after_start_seconds": round(statistics.median(i.last_post for i in creating), 2)
            if creating
            else None,
            "real_seconds": round(result.real_seconds, 1),
            "settings": result.settings,
        }
    }


def rows(results: dict) -> list[Row]:
    burst = results[KEY]
    return [
        Row(
            6,
            "burst 3,000 own tags: drained, virtual s",
            burst["drained_virtual_seconds"],
            f"<= {TARGET_RATIO * burst['physical_limit_seconds']:g}",
        ),
        Row(6, "  / physical limit (3,000 at 4/s = 750 s)", burst["ratio_to_physical_limit"], f"<= {TARGET_RATIO}"),
        Row(6, "  DLQ depth", burst["dlq_depth"], "0"),
        Row(6, "  most receives of one message", burst["max_receives"], "<= 3"),
        Row(6, "  CC POSTs (duplicates)", f"{burst['posts']} ({burst['duplicate_posts']})", f"{burst['requests']} (0)"),
        Row(6, "  most CC calls in any 1 s window", burst["max_calls_in_any_1s_window"], "<= 4"),
        Row(6, "  real seconds the burst took", burst["real_seconds"]),
    ]


def notes(results: dict) -> str:
    burst = results[KEY]
    settings = burst["settings"]
    met = burst["ratio_to_physical_limit"] is not None and burst["ratio_to_physical_limit"] <= TARGET_RATIO
    return (
        f"Burst (virtual time, devkit/virtual): CC_REQUESTS_PER_SECOND={settings['cc_requests_per_second']:g}, "
        f"the template's maximum (the service's default is {settings['template_default_requests_per_second']:g}/s; "
        "the target is stated at 4/s). Modelled latency: "
        f"{settings['cc_latency_seconds']:g} s per Constant Contact call, {settings['aws_latency_seconds']:g} s per "
        "AWS call made by a function; the event source mapping's own SQS calls and cold starts take none. "
        "Invocations overlap in virtual time as deployed (at most "
        f"{settings['intake_max_concurrency']} intakes of up to {settings['intake_batch_size']} records, the poller "
        f"every {settings['poll_schedule_seconds']} s from {settings['first_tick_seconds']:g} s after the burst), "
        "run one thread at a time so the run is deterministic. "
        f"No function ran for {burst['seconds_no_function_running']} s of the drain; a creating poller run made "
        f"{burst['poller_posts_per_creating_run']} POSTs on average, the first (median) "
        f"{burst['poller_median_first_post_after_start_seconds']} s and the last "
        f"{burst['poller_median_last_post_after_start_seconds']} s after its start. "
        f"Target {'met' if met else 'MISSED'} (see docs/benchmarks.md)."
    )
