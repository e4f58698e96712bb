"""The service's configuration: the environment variables template.yaml sets, read once into a typed object."""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, fields
from functools import lru_cache

DEFAULT_API_BASE_URL = "https://api.cc.email/v3"
DEFAULT_TOKEN_URL = "https://authz.constantcontact.com/oauth2/default/v1/token"


class ConfigurationError(RuntimeError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True)
class Config:
    token_secret_id: str
    table_name: str
    topic_arn: str
    api_base_url: str = DEFAULT_API_BASE_URL
    token_url: str = DEFAULT_TOKEN_URL
    requests_per_second: float = 3.0  # shared by every instance of both functions
    max_activities_per_request: int = 100  # protects the daily quota (10,000 calls) from one request
    create_retry_seconds: float = 30.0  # a request whose create failed transiently waits this long for its next try
    poller_run_seconds: float = 58.0  # a poller run starts calls this long, then its reserve (docs/benchmarks.md)
    activity_deadline_hours: float = 24.0
    activity_missing_hours: float = 6.0  # a 404 ends an activity only after this long missing (or past 10 days)
    retention_days: int = 30
    first_poll_delay_seconds: float = 0.0  # the schedule already spaces polls; raise to skip young activities
    max_poll_interval_seconds: float = 60.0
    time_reserve_seconds: float = 10.0  # stop starting API calls when less Lambda time is left
    connect_timeout_seconds: float = 3.05
    read_timeout_seconds: float = 6.0  # connect + read fit in the intake's 10 s time reserve
    # Resolving names (contract section 4): the daily quota's shares for the contact directory's sync and the
    # tag cache's refresh, and for per-address lookups and preview counts. Creation and polling have the rest,
    # so resolving never starves them (docs/how-it-works.md, "Names and addresses").
    daily_call_quota: int = 10_000
    sync_quota_share: float = 0.10
    lookup_quota_share: float = 0.05
    tag_refresh_seconds: float = 300.0  # the tag cache is refreshed on a miss at most this often
    directory_sync_seconds: float = 900.0  # the contact directory catches up with Constant Contact this often

    def calls_for(self, purpose: str) -> int:
        """Today's calls for ``sync`` or ``lookups``."""
        share = self.sync_quota_share if purpose == "sync" else self.lookup_quota_share
        return int(self.daily_call_quota * share)


ENVIRONMENT = {
    "token_secret_id": "CC_TOKEN_SECRET_ID",
    "table_name": "ACTIVITY_TABLE_NAME",
    "topic_arn": "RESULT_TOPIC_ARN",
    "api_base_url": "CC_API_BASE_URL",
    "token_url": "CC_TOKEN_URL",
    "requests_per_second": "CC_REQUESTS_PER_SECOND",
    "max_activities_per_request": "MAX_ACTIVITIES_PER_REQUEST",
    "create_retry_seconds": "CREATE_RETRY_SECONDS",
    "poller_run_seconds": "POLLER_RUN_SECONDS",
    "activity_deadline_hours": "ACTIVITY_DEADLINE_HOURS",
    "activity_missing_hours": "ACTIVITY_MISSING_HOURS",
    "retention_days": "RETENTION_DAYS",
    "first_poll_delay_seconds": "FIRST_POLL_DELAY_SECONDS",
    "max_poll_interval_seconds": "MAX_POLL_INTERVAL_SECONDS",
    "time_reserve_seconds": "TIME_RESERVE_SECONDS",
    "connect_timeout_seconds": "CC_CONNECT_TIMEOUT_SECONDS",
    "read_timeout_seconds": "CC_READ_TIMEOUT_SECONDS",
    "daily_call_quota": "CC_DAILY_CALL_QUOTA",
    "sync_quota_share": "SYNC_QUOTA_SHARE",
    "lookup_quota_share": "LOOKUP_QUOTA_SHARE",
    "tag_refresh_seconds": "TAG_REFRESH_SECONDS",
    "directory_sync_seconds": "DIRECTORY_SYNC_SECONDS",
}


def load_config() -> Config:
    """The configuration of this process (cached; re-read only if the environment changed)."""
    return _parse(tuple(os.environ.get(name) for name in ENVIRONMENT.values()))


@lru_cache(maxsize=8)
def _parse(values: tuple[str | None, ...]) -> Config:
    kinds = {field.name: field for field in fields(Config)}
    arguments = {}
    missing = []
    for (name, variable), value in zip(ENVIRONMENT.items(), values, strict=True):
        field = kinds[name]
        if value is None or value == "":
            if field.default is MISSING:
                missing.append(variable)
            continue
        kind = str if field.default is MISSING else type(field.default)
        try:
            arguments[name] = kind(value)
        except ValueError:
            raise ConfigurationError(f"{variable}={value!r} is not a valid {kind.__name__}") from None
    if missing:
        raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
    config = Config(**arguments)
    for name, (low, high) in RANGES.items():
        value = getattr(config, name)
        if not (low <= value <= high):  # also refuses nan
            raise ConfigurationError(f"{ENVIRONMENT[name]}={value!r} is out of range [{low:g}, {high:g}]")
    if config.sync_quota_share + config.lookup_quota_share > 0.5:
        raise ConfigurationError(
            "SYNC_QUOTA_SHARE + LOOKUP_QUOTA_SHARE must be at most 0.5: creating and polling activities keep the rest"
        )
    return config


# Ranges checked at cold start (template.yaml's parameters keep deployed values inside them).
RANGES = {
    "requests_per_second": (0.01, 1000.0),  # the template allows 1-4; tests run simulators faster
    "max_activities_per_request": (1, 500),  # 500: a request record with its plan and errors stays one item
    "poller_run_seconds": (1.0, 900.0),
    "create_retry_seconds": (0.0, 3600.0),
    "activity_deadline_hours": (1e-6, 240.0),
    "activity_missing_hours": (0.0, 240.0),
    "retention_days": (1, 3650),
    "first_poll_delay_seconds": (0.0, 3600.0),
    "max_poll_interval_seconds": (0.0, 3600.0),
    "time_reserve_seconds": (0.0, 60.0),
    "connect_timeout_seconds": (0.1, 60.0),
    "read_timeout_seconds": (0.1, 60.0),
    "daily_call_quota": (1, 10_000_000),
    "sync_quota_share": (0.0, 0.5),
    "lookup_quota_share": (0.0, 0.5),
    "tag_refresh_seconds": (0.0, 86_400.0),
    "directory_sync_seconds": (0.0, 86_400.0),
}
