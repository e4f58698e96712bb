"""Poller function, run on a schedule: follow pending activities, publish finished requests (``untag.poller``)."""

from dataclasses import asdict

from untag.budget import TimeBudget
from untag.observability import lambda_entry, logger
from untag.poller import poll
from untag.services import current_services


@lambda_entry
def lambda_handler(event: dict, context) -> dict:
    services = current_services()
    config = services.config
    report = poll(services, TimeBudget(context, config.time_reserve_seconds, run_seconds=config.poller_run_seconds))
    logger.info("poller run done", extra=asdict(report))
    return asdict(report)
