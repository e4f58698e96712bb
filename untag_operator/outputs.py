"""A stack's outputs, read in one place: from a JSON file or from CloudFormation.

A file may hold an object (``{"IntakeQueueUrl": ...}``), the ``[{"OutputKey", "OutputValue"}]`` list
that ``sam list stack-outputs --output json`` prints, or what ``aws cloudformation describe-stacks``
prints. The operator CLI reads them for ``--outputs`` and ``--stack``; the developer kit's runner for
``--stack-outputs``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from untag_operator.console import CliError


class OutputsError(CliError):
    """The outputs cannot be read, or are not the untag service's."""


def read_outputs_file(path: str | os.PathLike[str], expected: Iterable[str]) -> dict[str, str]:
    """The string outputs in a JSON file; at least one of ``expected`` must be among them."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise OutputsError(f"cannot read the outputs file {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise OutputsError(f"the outputs file {path} is not valid JSON: {error}") from None
    outputs = _outputs_of(document)
    expected = tuple(expected)
    if outputs is None or not any(key in outputs for key in expected):
        raise OutputsError(f"the outputs file {path} holds no stack outputs (expected keys: {', '.join(expected)})")
    return outputs


def _outputs_of(document: Any) -> dict[str, str] | None:
    if isinstance(document, dict) and isinstance(document.get("Stacks"), list) and document["Stacks"]:
        document = document["Stacks"][0]
    if isinstance(document, dict) and isinstance(document.get("Outputs"), list):
        document = document["Outputs"]
    if isinstance(document, list):
        document = {item.get("OutputKey"): item.get("OutputValue") for item in document if isinstance(item, dict)}
    if not isinstance(document, dict):
        return None
    return {key: value for key, value in document.items() if isinstance(key, str) and isinstance(value, str)}


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The outputs of a deployed stack (cloudformation:DescribeStacks)."""
    region = cloudformation.meta.region_name
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if error.response.get("Error", {}).get("Code") == "ValidationError" and "does not exist" in message:
            raise OutputsError(
                f"stack {stack_name!r} not found in {region} (check the name, and --region or AWS_DEFAULT_REGION)"
            ) from None
        raise
    if not stacks:
        raise OutputsError(f"stack {stack_name!r} not found in {region}")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", ())}
    if not outputs:
        raise OutputsError(
            f"stack {stack_name!r} has no outputs (status {stacks[0].get('StackStatus')}): "
            f"is it the untag service's stack, and did its deployment finish?"
        )
    return outputs


def missing_outputs(outputs: dict[str, str], required: Iterable[str]) -> list[str]:
    """The required outputs that are absent or empty."""
    return [key for key in required if not outputs.get(key)]


def region_of(outputs: dict[str, str]) -> str | None:
    """The region of the stack, read from an ARN among its outputs."""
    for key in ("ResultTopicArn", "IntakeQueueArn"):
        parts = outputs.get(key, "").split(":")
        if len(parts) > 4 and parts[0] == "arn" and parts[3]:
            return parts[3]
    return None
