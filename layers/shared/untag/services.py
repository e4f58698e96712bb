"""The service's parts wired together from the configuration: once per process, AWS clients created on first use."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from untag.config import Config, load_config

# Secrets Manager calls are bounded so that a token refresh has a known longest duration
# (untag.tokens.longest_refresh_seconds): 1 s to connect, 3 s to answer, no botocore retries
# (the token provider retries the write itself).
CLIENT_OPTIONS = {
    "secretsmanager": {"connect_timeout": 1, "read_timeout": 3, "retries": {"max_attempts": 1, "mode": "standard"}},
}


@dataclass
class Services:
    config: Config
    clock: Callable[[], float] = field(default=time.time)
    sleep: Callable[[float], None] = field(default=time.sleep)  # every wait: rate slots, back-off, token lock
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def aws(self, service: str) -> Any:
        """A boto3 client, created on first use (so tests can start moto first)."""
        if service not in self._clients:
            import boto3  # noqa: PLC0415 - created lazily, off the import path
            from botocore.config import Config as ClientConfig  # noqa: PLC0415

            options = CLIENT_OPTIONS.get(service)
            self._clients[service] = boto3.client(service, config=ClientConfig(**options) if options else None)
        return self._clients[service]

    def begin(self, budget: Any) -> None:
        """Start an invocation: what needs its Lambda time left learns it (the token refresh)."""
        self.tokens.time_left = budget.lambda_remaining

    @cached_property
    def store(self):
        from untag.store import ActivityStore

        return ActivityStore(
            lambda: self.aws("dynamodb"),
            self.config.table_name,
            retention_days=self.config.retention_days,
            clock=self.clock,
        )

    @cached_property
    def controls(self):
        from untag.controls import Controls

        return Controls(lambda: self.aws("dynamodb"), self.config.table_name, clock=self.clock)

    @cached_property
    def directory(self):
        from untag.directory import DynamoDirectory

        return DynamoDirectory(lambda: self.aws("dynamodb"), self.config.table_name, sleep=self.sleep)

    @cached_property
    def publisher(self):
        from untag.publisher import SnsPublisher

        return SnsPublisher(lambda: self.aws("sns"), self.config.topic_arn)

    @cached_property
    def tokens(self):
        from untag.tokens import SecretsManagerSecret, TokenProvider

        secret = SecretsManagerSecret(lambda: self.aws("secretsmanager"), self.config.token_secret_id)
        return TokenProvider(secret, self.config.token_url, self.controls, clock=self.clock, sleep=self.sleep)

    @cached_property
    def constant_contact(self):
        import requests

        from untag.constant_contact import ConstantContactClient
        from untag.rate import SharedRateLimiter

        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=4, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return ConstantContactClient(
            self.config.api_base_url,
            self.tokens,
            rate_limiter=SharedRateLimiter(
                self.controls, self.config.requests_per_second, clock=self.clock, sleep=self.sleep
            ),
            timeouts=(self.config.connect_timeout_seconds, self.config.read_timeout_seconds),
            session=session,
            sleep=self.sleep,
        )


def current_services() -> Services:
    """The services for this process's configuration (re-wired only if the environment changed)."""
    return _services_for(load_config())


@lru_cache(maxsize=4)
def _services_for(config: Config) -> Services:
    return Services(config)
