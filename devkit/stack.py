"""Local stack: creates template.yaml's queues, table, topic and secret with boto3 (moto or any endpoint).

Tests, the local runner and the benchmarks build their resources from template.yaml's own
Properties and resolve the functions' environment from it, so they cannot drift from what
is deployed: change a property in the template and it changes here too.

    with moto.mock_aws():
        stack = provision()
        env = stack.function_environment("IntakeFunction")

Against a server (e.g. ``moto.server.ThreadedMotoServer``) set ``AWS_ENDPOINT_URL``, or pass
``endpoint_url=``. Only the resource types below are created; functions, layers, log groups
and alarms are left to SAM (``Ref`` to them resolves to ``f"{prefix}-{LogicalId}"``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

__all__ = ["Stack", "load_template", "provision"]

LOGGER = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent

INTAKE_QUEUE = "IntakeQueue"
DEAD_LETTER_QUEUE = "IntakeDeadLetterQueue"
ACTIVITY_TABLE = "ActivityTable"
RESULT_TOPIC = "ResultTopic"
TOKEN_SECRET = "TokenSecret"

PLACEHOLDER_SECRET = {"access_token": "placeholder"}
FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})


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


# --------------------------------------------------------------------------- template loading


class _TemplateLoader(yaml.SafeLoader):
    """YAML loader for CloudFormation: short intrinsic tags in long form, dates kept as strings."""


# CloudFormation reads AWSTemplateFormatVersion "2010-09-09" as a string, not a date.
_TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{tag_suffix}": value}


_TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def _template_file(path: str | os.PathLike[str]) -> Path:
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return REPO_ROOT / candidate  # "template.yaml" works from any working directory


def load_template(path: str | os.PathLike[str] = "template.yaml") -> dict:
    """template.yaml as a dict, with ``!Ref x`` as ``{"Ref": x}``, ``!GetAtt a.b`` as ``{"Fn::GetAtt": [a, b]}``..."""
    with _template_file(path).open(encoding="utf-8") as stream:
        # _TemplateLoader is a SafeLoader subclass: no arbitrary objects.
        return yaml.load(stream, Loader=_TemplateLoader)  # nosec B506


# --------------------------------------------------------------------------- intrinsic functions


class _NoValue:
    """AWS::NoValue: the property is removed."""


NO_VALUE = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _Resolver:
    """Evaluates intrinsic functions against parameters and the resources created so far."""

    def __init__(
        self, template: dict, parameters: Mapping[str, Any], *, prefix: str, region: str, account_id: Callable[[], str]
    ) -> None:
        self.template = template
        self.prefix = prefix
        self.parameters = _parameter_values(template, parameters)
        self.refs: dict[str, Any] = {}
        self.attributes: dict[str, dict[str, Any]] = {}
        self._account_id = account_id
        self._region = region
        self._conditions: dict[str, bool] = {}

    def pseudo_parameter(self, name: str) -> Any:
        match name:
            case "AWS::Region":
                return self._region
            case "AWS::AccountId":
                return self._account_id()
            case "AWS::StackName":
                return self.prefix
            case "AWS::StackId":
                return f"arn:aws:cloudformation:{self._region}:{self._account_id()}:stack/{self.prefix}/local"
            case "AWS::Partition":
                return "aws"
            case "AWS::URLSuffix":
                return "amazonaws.com"
            case "AWS::NotificationARNs":
                return []
            case "AWS::NoValue":
                return NO_VALUE
        raise KeyError(f"unknown pseudo parameter {name}")

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo_parameter(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.template.get("Resources", {}):
            return f"{self.prefix}-{name}"  # not created locally (function, layer...): its local name
        raise KeyError(f"!Ref {name}: no such parameter or resource")

    def get_att(self, resource: str, attribute: str) -> Any:
        try:
            return self.attributes[resource][attribute]
        except KeyError:
            raise KeyError(f"!GetAtt {resource}.{attribute}: not available locally") from None

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(self.resolve(argument))
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        match name:
            case "GetAtt":
                resource, attribute = self.resolve(argument)
                return self.get_att(resource, attribute)
            case "Sub":
                return self._sub(argument)
            case "Join":
                delimiter, items = argument
                return self.resolve(delimiter).join(str(item) for item in self.resolve(items))
            case "Select":
                index, items = self.resolve(argument)
                return items[int(index)]
            case "Split":
                delimiter, text = self.resolve(argument)
                return text.split(delimiter)
            case "If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
            case "Equals":
                left, right = self.resolve(argument)
                return str(left) == str(right)
            case "And":
                return all(self.resolve(argument))
            case "Or":
                return any(self.resolve(argument))
            case "Not":
                return not self.resolve(argument)[0]
            case "FindInMap":
                mapping, first, second = self.resolve(argument)[:3]
                return self.template["Mappings"][mapping][first][second]
            case "Base64":
                return base64.b64encode(str(self.resolve(argument)).encode()).decode()
            case "GetAZs":
                return [f"{self._region}{zone}" for zone in "abc"]
            case "ToJsonString":
                return json.dumps(self.resolve(argument), separators=(",", ":"))
        raise NotImplementedError(f"Fn::{name} is not supported by devkit.stack")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], self.resolve(argument[1]))

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                resource, _, attribute = name.partition(".")
                return str(self.get_att(resource, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(substitute, text)


def _parameter_values(template: dict, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values as CloudFormation passes them: strings (lists for list types)."""
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise KeyError(f"unknown template parameters: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, declaration in declared.items():
        if name in overrides:
            raw = overrides[name]
        elif "Default" in declaration:
            raw = declaration["Default"]
        else:
            raise KeyError(f"parameter {name} has no default: pass it in parameters=")
        text = ",".join(map(_text, raw)) if isinstance(raw, list) else _text(raw)
        parameter_type = declaration.get("Type", "String")
        is_list = parameter_type == "CommaDelimitedList" or parameter_type.startswith("List<")
        values[name] = [item.strip() for item in text.split(",")] if is_list else text
    return values


def _text(value: Any) -> str:
    """A value as CloudFormation renders it in a string (environment variable, queue attribute)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _references(value: Any) -> set[str]:
    """Logical ids (and parameters) a property value refers to."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                found.add(argument[0] if isinstance(argument, list) else str(argument).partition(".")[0])
            elif key == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                found |= {name.partition(".")[0] for name in _SUB_VARIABLE.findall(text) if not name.startswith("!")}
            found |= _references(argument)
    return found


# --------------------------------------------------------------------------- fitting properties to boto3


def _fit(value: Any, shape: Any, path: str = "") -> Any:
    """Keep what the botocore input shape accepts (CloudFormation-only keys dropped), coerce scalars."""
    if shape.type_name == "structure":
        fitted = {}
        for key, item in value.items():
            if key in shape.members:
                fitted[key] = _fit(item, shape.members[key], f"{path}.{key}")
            else:
                LOGGER.debug("devkit.stack: %s%s is not accepted by boto3, skipped", path, key)
        return fitted
    if shape.type_name == "list":
        return [_fit(item, shape.member, path) for item in value]
    if shape.type_name == "map":
        return {key: _fit(item, shape.value, path) for key, item in value.items()}
    if shape.type_name in ("integer", "long"):
        return int(value)
    if shape.type_name in ("double", "float"):
        return float(value)
    if shape.type_name == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if shape.type_name == "string":
        return _text(value)
    return value


def _operation_input(client: Any, operation: str) -> Any:
    return client.meta.service_model.operation_model(operation).input_shape


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


# --------------------------------------------------------------------------- provisioning


class _Provisioner:
    """Creates one resource per supported type; returns its !Ref value and !GetAtt attributes."""

    def __init__(self, session: boto3.session.Session, region: str, endpoint_url: str | None, prefix: str) -> None:
        self._session = session
        self._region = region
        self._endpoint_url = endpoint_url
        self._prefix = prefix
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, region_name=self._region, endpoint_url=self._endpoint_url
            )
        return self._clients[service]

    def name(self, logical_id: str) -> str:
        return f"{self._prefix}-{logical_id}"

    def account_id(self) -> str:
        return self.client("sts").get_caller_identity()["Account"]

    def handlers(self) -> dict[str, Callable[[str, dict], tuple[str, dict[str, str]]]]:
        return {
            "AWS::SQS::Queue": self.queue,
            "AWS::DynamoDB::Table": self.table,
            "AWS::SNS::Topic": self.topic,
            "AWS::SecretsManager::Secret": self.secret,
        }

    def queue(self, logical_id: str, properties: dict) -> tuple[str, dict[str, str]]:
        sqs = self.client("sqs")
        name = self.name(logical_id) + (".fifo" if _is_true(properties.get("FifoQueue")) else "")
        # AWS::SQS::Queue properties are named like the SQS queue attributes.
        attributes = {key: _text(value) for key, value in properties.items() if key not in ("QueueName", "Tags")}
        tags = {tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])}
        try:
            url = sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]
        except ClientError as error:
            if _error_code(error) not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]  # earlier run: bring it up to date
            mutable = {key: value for key, value in attributes.items() if key != "FifoQueue"}
            sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def table(self, logical_id: str, properties: dict) -> tuple[str, dict[str, str]]:
        dynamodb = self.client("dynamodb")
        name = self.name(logical_id)
        request = dict(properties, TableName=name)
        time_to_live = request.pop("TimeToLiveSpecification", None)
        point_in_time_recovery = request.pop("PointInTimeRecoverySpecification", None)
        # The few properties whose CloudFormation shape differs from the CreateTable one.
        if "SSESpecification" in request:
            sse = dict(request["SSESpecification"])
            sse["Enabled"] = sse.pop("SSEEnabled", False)
            request["SSESpecification"] = sse
        if "StreamSpecification" in request:
            request["StreamSpecification"] = dict(request["StreamSpecification"], StreamEnabled=True)
        if isinstance(request.get("ResourcePolicy"), dict):
            request["ResourcePolicy"] = json.dumps(request["ResourcePolicy"].get("PolicyDocument", {}))
        try:
            dynamodb.create_table(**_fit(request, _operation_input(dynamodb, "CreateTable")))
        except ClientError as error:
            if _error_code(error) != "ResourceInUseException":
                raise
            LOGGER.info("devkit.stack: table %s exists, reused as is", name)
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        if time_to_live:
            current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            shape = _operation_input(dynamodb, "UpdateTimeToLive").members["TimeToLiveSpecification"]
            wanted = _fit(time_to_live, shape)
            already = (
                current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
                and current.get("AttributeName") == wanted["AttributeName"]
            )
            if wanted["Enabled"] and not already:
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=wanted)
        if point_in_time_recovery:
            shape = _operation_input(dynamodb, "UpdateContinuousBackups").members["PointInTimeRecoverySpecification"]
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification=_fit(point_in_time_recovery, shape)
            )
        table = dynamodb.describe_table(TableName=name)["Table"]
        attributes = {"Arn": table["TableArn"]}
        if table.get("LatestStreamArn"):
            attributes["StreamArn"] = table["LatestStreamArn"]
        return name, attributes

    def topic(self, logical_id: str, properties: dict) -> tuple[str, dict[str, str]]:
        sns = self.client("sns")
        name = self.name(logical_id) + (".fifo" if _is_true(properties.get("FifoTopic")) else "")
        # Scalar AWS::SNS::Topic properties are named like the SNS topic attributes.
        not_attributes = {"TopicName", "Tags", "Subscription", "DataProtectionPolicy", "DeliveryStatusLogging"}
        attributes = {key: _text(value) for key, value in properties.items() if key not in not_attributes}
        request: dict[str, Any] = {"Name": name, "Attributes": attributes}
        if properties.get("Tags"):
            request["Tags"] = properties["Tags"]
        arn = sns.create_topic(**request)["TopicArn"]
        return arn, {"TopicArn": arn, "TopicName": name}

    def secret(self, logical_id: str, properties: dict) -> tuple[str, dict[str, str]]:
        secrets = self.client("secretsmanager")
        name = self.name(logical_id)
        request: dict[str, Any] = {"Name": name, "SecretString": json.dumps(PLACEHOLDER_SECRET)}
        if properties.get("Description"):
            request["Description"] = properties["Description"]
        if properties.get("KmsKeyId"):
            request["KmsKeyId"] = properties["KmsKeyId"]
        try:
            arn = secrets.create_secret(**request)["ARN"]
        except ClientError as error:
            if _error_code(error) != "ResourceExistsException":
                raise
            arn = secrets.describe_secret(SecretId=name)["ARN"]  # earlier run: keep the tokens it holds
        return arn, {"Id": arn}


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
    provisioner = _Provisioner(session, region, endpoint_url, prefix)
    resolver = _Resolver(template, parameters or {}, prefix=prefix, region=region, account_id=provisioner.account_id)

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
        graph.add(logical_id, *((_references(resource.get("Properties", {})) | set(depends_on)) & wanted.keys()))
    for logical_id in graph.static_order():
        resource = wanted[logical_id]
        properties = resolver.resolve(resource.get("Properties", {}))
        physical_id, attributes = handlers[resource["Type"]](logical_id, properties)
        resolver.refs[logical_id] = physical_id
        resolver.attributes[logical_id] = attributes

    environment = {
        logical_id: _function_environment(template, logical_id, resolver)
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


def _function_environment(template: dict, logical_id: str, resolver: _Resolver) -> dict[str, str]:
    global_variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own_variables = template["Resources"][logical_id].get("Properties", {}).get("Environment", {}).get("Variables", {})
    resolved = resolver.resolve({**global_variables, **own_variables})
    return {name: _text(value) for name, value in resolved.items()}


if __name__ == "__main__":  # python -m devkit.stack: provision against AWS_ENDPOINT_URL, print the result
    stack = provision()
    print(json.dumps({k: v for k, v in vars(stack).items() if k != "template"}, indent=2))
