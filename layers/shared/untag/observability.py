"""The one Logger and Metrics every part of the service shares (Powertools JSON logs, EMF metrics).

Tracing is Lambda's own (template.yaml, ``Tracing: Active``): Lambda records each invocation and its
initialisation in X-Ray, and every log line carries that invocation's ``xray_trace_id``. No tracing
SDK runs in the functions (docs/design.md, "Tracing").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "untag"
NAMESPACE = "ConstantContactUntag"

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)

__all__ = ["logger", "metrics", "MetricUnit", "count", "count_call", "lambda_entry"]


def count(name: str, value: float = 1) -> None:
    """Add to a counter metric (low-cardinality names only: the dimension set is fixed)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_call(endpoint: str, status_class: str) -> None:
    """One Constant Contact call, by endpoint (create/get/list/token) and status class (2xx, 4xx, timeout...)."""
    if status_class[0].isdigit() and endpoint != "token":
        count("ConstantContactRequests")  # what the daily quota counts
    if is_metrics_disabled():  # single_metric itself ignores POWERTOOLS_METRICS_DISABLED
        return
    with single_metric(name="ConstantContactCalls", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="endpoint", value=endpoint)
        metric.add_dimension(name="status", value=status_class)


def lambda_entry(handler: Callable[[dict, Any], Any]) -> Callable[[dict, Any], Any]:
    """Wrap a Lambda handler with the logger context and EMF metrics (cold start included)."""
    observed = logger.inject_lambda_context(clear_state=True)(
        metrics.log_metrics(capture_cold_start_metric=True)(handler)
    )

    @functools.wraps(handler)
    def entry(event: dict, context: Any = None) -> Any:
        return observed(event, context if _looks_like_context(context) else _LocalContext())

    return entry


def _looks_like_context(context: Any) -> bool:
    return all(
        hasattr(context, name)
        for name in ("function_name", "memory_limit_in_mb", "invoked_function_arn", "aws_request_id")
    )


class _LocalContext:
    """Stands in for a Lambda context when a handler is called without one (scripts, tests)."""

    function_name = "local"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:local"
    aws_request_id = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000
