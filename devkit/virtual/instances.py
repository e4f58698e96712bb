"""Emulated Lambda instances on a virtual clock: their services (clock, sleep, modelled latencies) and context."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from devkit.pipeline import LambdaContext
from devkit.virtual.clock import VirtualClock


def virtual_services(base: type, clock: VirtualClock, session: Any, *, cc_latency: float, aws_latency: float):
    """Services for emulated Lambda instances (one each): virtual clock and sleep, and the modelled latencies.

    ``aws_latency`` follows every AWS call the functions make; ``cc_latency`` every call of the Constant
    Contact client (a retry inside one, after a 401 or a 429, shares it), after it reached the simulator.
    """

    @dataclass
    class VirtualServices(base):
        def aws(self, service: str) -> Any:
            if service not in self._clients:
                client = session.client(service)
                client.meta.events.register("after-call", lambda **_: self.sleep(aws_latency))
                self._clients[service] = client
            return self._clients[service]

        @cached_property
        def constant_contact(self):
            return _Latency(base.constant_contact.func(self), clock, cc_latency)

    def make(config: Any) -> Any:
        return VirtualServices(config, clock=clock.now, sleep=clock.sleep)

    return make


class _Latency:
    """The Constant Contact client, each of whose calls takes ``seconds`` more (the answer's way back);
    ``log`` lists (method, virtual time the call ended) for this instance."""

    def __init__(self, client: Any, clock: VirtualClock, seconds: float):
        self._client, self._clock, self._seconds = client, clock, seconds
        self.log: list[tuple[str, float]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            finally:
                self._clock.sleep(self._seconds)
                self.log.append((name, self._clock.now()))

        return call


@dataclass
class VirtualContext(LambdaContext):
    """The Lambda context, counting down to the function's timeout on a virtual clock."""

    clock: Callable[[], float] = time.monotonic

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (self.clock() - self.started)) * 1000))


def virtual_context(clock: VirtualClock, function_name: str, timeout: float) -> VirtualContext:
    return VirtualContext(function_name, timeout, started=clock.now(), clock=clock.now)
