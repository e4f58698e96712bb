"""Provision template.yaml's stack locally, or describe a deployed one: physical ids and the functions' environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

import boto3

from devkit.stack.intrinsics import Resolver, as_text, references
from devkit.stack.resources import Provisioner
from devkit.stack.template import FUNCTION_TYPES, load_template

INTAKE_QUEUE = "IntakeQueue"
DEAD_LETTER_QUEUE = "IntakeDeadLetterQueue"
ACTIVITY_TABLE = "ActivityTable"
RESULT_TOPIC = "ResultTopic"
TOKEN_SECRET = "TokenSecret"


@dataclass
class Stack:
    """Physical ids of the provisioned resources and the functions' resolved environment."""

    queue_url: str
    queue_arn: str
    dlq_url: str
    table_name: str
    topic_arn: str
    secret_id: str  # the secret's ARN, as !Ref TokenSecret gives it
    environment: dict[str, dict[str, str]]  # function logical id -> resolved variables
    template: dict
    physical_ids: dict[str, str] = field(default_factory=dict)  # logical id -> !Ref value
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> !GetAtt values

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Environment of one function: Globals merged with its own variables, all resolved."""
        try:
            return dict(self.environment[logical_id])
        except KeyError:
            functions = sorted(self.environment)
            raise KeyError(f"{logical_id!r} is not a function of the template; functions: {functions}") from None


def provision(
    template_path: str | os.PathLike[str] = "template.yaml",
    *,
    parameters: Mapping[str, Any] | None = None,
    prefix: str = "untag",
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
) -> Stack:
    """Create the template's queues, table, topic and secret; resolve every function's environment.

    Physical names are ``f"{prefix}-{LogicalId}"``. The region comes from ``session``, else
    ``AWS_DEFAULT_REGION``, else us-east-1; the endpoint from ``endpoint_url``, else
    ``AWS_ENDPOINT_URL`` (read by boto3), else AWS itself. Running it again against the same
    endpoint reuses what exists (the secret keeps its value).
    """
    template = load_template(template_path)
    session = session or boto3.session.Session()
    region = session.region_name or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    provisioner = Provisioner(session, region, endpoint_url, prefix)
    resolver = Resolver(template, parameters or {}, prefix=prefix, region=region, account_id=provisioner.account_id)

    handlers = provisioner.handlers()
    resources: dict[str, dict] = template.get("Resources", {})
    wanted = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource["Type"] in handlers and ("Condition" not in resource or resolver.condition(resource["Condition"]))
    }
    graph = TopologicalSorter()
    for logical_id, resource in wanted.items():
        depends_on = resource.get("DependsOn", [])
        depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
        graph.add(logical_id, *((references(resource.get("Properties", {})) | set(depends_on)) & wanted.keys()))
    for logical_id in graph.static_order():
        resource = wanted[logical_id]
        properties = resolver.resolve(resource.get("Properties", {}))
        physical_id, attributes = handlers[resource["Type"]](logical_id, properties)
        resolver.refs[logical_id] = physical_id
        resolver.attributes[logical_id] = attributes

    environment = {
        logical_id: function_environment(template, logical_id, resolver)
        for logical_id, resource in resources.items()
        if resource["Type"] in FUNCTION_TYPES
    }
    missing = {INTAKE_QUEUE, DEAD_LETTER_QUEUE, ACTIVITY_TABLE, RESULT_TOPIC, TOKEN_SECRET} - resolver.refs.keys()
    if missing:
        raise KeyError(f"template.yaml no longer declares {sorted(missing)}")
    return Stack(
        queue_url=resolver.refs[INTAKE_QUEUE],
        queue_arn=resolver.attributes[INTAKE_QUEUE]["Arn"],
        dlq_url=resolver.refs[DEAD_LETTER_QUEUE],
        table_name=resolver.refs[ACTIVITY_TABLE],
        topic_arn=resolver.refs[RESULT_TOPIC],
        secret_id=resolver.refs[TOKEN_SECRET],
        environment=environment,
        template=template,
        physical_ids=dict(resolver.refs),
        attributes={logical_id: dict(values) for logical_id, values in resolver.attributes.items()},
    )


def function_environment(template: dict, logical_id: str, resolver: Resolver) -> dict[str, str]:
    global_variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own_variables = template["Resources"][logical_id].get("Properties", {}).get("Environment", {}).get("Variables", {})
    resolved = resolver.resolve({**global_variables, **own_variables})
    return {name: as_text(value) for name, value in resolved.items()}


# The outputs of a deployed stack that stand in for its resources: logical id -> output key.
DEPLOYED_REFS = {
    INTAKE_QUEUE: "IntakeQueueUrl",
    DEAD_LETTER_QUEUE: "DeadLetterQueueUrl",
    ACTIVITY_TABLE: "ActivityTableName",
    RESULT_TOPIC: "ResultTopicArn",
    TOKEN_SECRET: "TokenSecretArn",
}
DEPLOYED_OUTPUTS = (*DEPLOYED_REFS.values(), "IntakeQueueArn")


def deployed(outputs: Mapping[str, str], template_path: str | os.PathLike[str] = "template.yaml") -> Stack:
    """A deployed stack's resources, named by its outputs, with the functions' environment resolved from
    template.yaml (its default parameters) with those resources as the ``!Ref`` values. Nothing is created
    or read; the region and account come from the intake queue's ARN. ValueError when outputs are missing."""
    missing = [key for key in DEPLOYED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise ValueError(f"missing stack outputs {', '.join(missing)}")
    _, _, _, region, account, _ = outputs["IntakeQueueArn"].split(":", 5)
    template = load_template(template_path)
    resolver = Resolver(template, {}, prefix="deployed", region=region, account_id=lambda: account)
    resolver.refs.update({logical_id: outputs[key] for logical_id, key in DEPLOYED_REFS.items()})
    resolver.attributes[INTAKE_QUEUE] = {"Arn": outputs["IntakeQueueArn"], "QueueUrl": outputs["IntakeQueueUrl"]}
    resources = template["Resources"]
    functions = [logical_id for logical_id, resource in resources.items() if resource["Type"] in FUNCTION_TYPES]
    for logical_id in functions:
        variables = resources[logical_id].get("Properties", {}).get("Environment", {}).get("Variables", {})
        unknown = (references(variables) & resources.keys()) - resolver.refs.keys()
        if unknown:
            raise ValueError(
                f"{logical_id}'s environment refers to {', '.join(sorted(unknown))}, which the stack outputs "
                "do not give"
            )
    return Stack(
        queue_url=outputs["IntakeQueueUrl"],
        queue_arn=outputs["IntakeQueueArn"],
        dlq_url=outputs["DeadLetterQueueUrl"],
        table_name=outputs["ActivityTableName"],
        topic_arn=outputs["ResultTopicArn"],
        secret_id=outputs["TokenSecretArn"],
        environment={logical_id: function_environment(template, logical_id, resolver) for logical_id in functions},
        template=template,
        physical_ids=dict(resolver.refs),
    )
