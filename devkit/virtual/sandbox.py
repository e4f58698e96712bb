"""The burst's surroundings: an environment restored afterwards, and moto's SQS made fast enough for thousands."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def scoped_environment() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def quicker_moto_sqs() -> Iterator[None]:
    """moto's SQS computes every attribute of a queue (each counting every message, reading the clock
    through datetime arithmetic per message) on each message sent and, three times, on each message
    received: quadratic in the queue's length, minutes for a burst of 3,000. The same answers, sooner:
    the clock read with time.time(), the retention check reading its one attribute."""
    from unittest import mock

    from moto.core.utils import unix_time
    from moto.sqs import models

    def now(dt: Any = None) -> float:
        return time.time() if dt is None else unix_time(dt)

    def retained(backend: Any, queue_name: str, message: Any) -> bool:
        period = int(backend.get_queue(queue_name).message_retention_period)
        return period + message.sent_timestamp / 1000 > time.time()

    with (
        mock.patch.object(models, "unix_time", now),
        mock.patch.object(models, "unix_time_millis", lambda dt=None: now(dt) * 1000.0),
        mock.patch.object(models.SQSBackend, "is_message_valid_based_on_retention_period", retained),
    ):
        yield
