"""The stack an operator command works on: its outputs (``--stack``, ``--outputs``) and the AWS clients to reach it."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError

from untag.store import ActivityStore
from untag_operator.console import EXIT_USAGE, CliError
from untag_operator.outputs import read_outputs_file, region_of, stack_outputs

OUTPUT_KEYS = ("IntakeQueueUrl", "ActivityTableName", "ResultTopicArn", "DeadLetterQueueUrl")


@dataclass
class Target:
    """The stack's resources (from its outputs) and the AWS clients to reach them."""

    outputs: dict[str, str]
    origin: str  # "stack NAME" or "outputs FILE", for error messages
    session: boto3.session.Session
    endpoint_url: str | None = None
    expected: tuple[str, ...] = OUTPUT_KEYS  # the outputs the command reads, for error messages
    _clients: dict[str, Any] = field(default_factory=dict)

    def output(self, key: str) -> str:
        value = self.outputs.get(key)
        if not isinstance(value, str) or not value:
            raise CliError(f"{self.origin} has no output {key} (expected: {', '.join(self.expected)})")
        return value

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    @property
    def region(self) -> str | None:
        return self.session.region_name

    def store(self) -> ActivityStore:
        dynamodb = self.client("dynamodb")
        return ActivityStore(lambda: dynamodb, self.output("ActivityTableName"))


def resolve_target(args: argparse.Namespace, expected: tuple[str, ...] = OUTPUT_KEYS) -> Target:
    """The stack the arguments (or UNTAG_STACK / UNTAG_OUTPUTS) name, with a session in its region; ``expected``:
    the outputs the command reads (an outputs file must hold one of them)."""
    stack_name, outputs_file = getattr(args, "stack", None), getattr(args, "outputs", None)
    if not stack_name and not outputs_file:  # the environment names the stack when the flags do not
        stack_name, outputs_file = os.environ.get("UNTAG_STACK"), os.environ.get("UNTAG_OUTPUTS")
    if stack_name and outputs_file:
        raise CliError("give --stack NAME or --outputs FILE, not both", EXIT_USAGE)
    if not stack_name and not outputs_file:
        raise CliError(
            "which stack? give --stack NAME or --outputs FILE (or set UNTAG_STACK / UNTAG_OUTPUTS)", EXIT_USAGE
        )
    endpoint_url = endpoint_of(args)
    region = getattr(args, "region", None)
    outputs: dict[str, str] = {}
    if outputs_file:
        outputs = read_outputs_file(outputs_file, expected)
        endpoint_url = endpoint_url or outputs.get("EndpointUrl") or None
        region = region or region_of(outputs)
    session = aws_session(args, region)
    if stack_name:
        target = Target({}, f"stack {stack_name!r}", session, endpoint_url, expected)
        target.outputs = stack_outputs(target.client("cloudformation"), stack_name)
        return target
    return Target(outputs, f"outputs file {outputs_file}", session, endpoint_url, expected)


def endpoint_of(args: argparse.Namespace) -> str | None:
    """The AWS endpoint the arguments (or AWS_ENDPOINT_URL) name: a local AWS; None for AWS itself."""
    return getattr(args, "endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL") or None


def aws_session(args: argparse.Namespace, region: str | None = None) -> boto3.session.Session:
    """A session with the arguments' profile, in ``region`` (else --region, else the AWS configuration's)."""
    try:
        session = boto3.session.Session(
            profile_name=getattr(args, "profile", None), region_name=region or getattr(args, "region", None)
        )
    except BotoCoreError as error:  # ProfileNotFound
        raise CliError(str(error)) from None
    if not session.region_name:
        raise CliError("no AWS region: pass --region or set AWS_DEFAULT_REGION (or a region in your AWS profile)")
    return session
