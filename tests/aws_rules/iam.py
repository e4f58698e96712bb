"""The rules of real AWS our tests enforce: IAM (a pytest plugin, registered in tests/conftest.py).

moto checks no permission, so a function whose role lacks an action it calls passes every test and
fails once deployed. This plugin gives each function the role template.yaml gives it and checks
every AWS call its code makes against that role, as AWS does, before the call reaches moto:

- The roles are those of the deployed stack: template.yaml after SAM's own transform
  (aws-sam-translator), so policy templates (``SNSPublishMessagePolicy``) and the managed
  policies SAM attaches are expanded as CloudFormation receives them. Intrinsic functions in the
  statements are resolved against the stack devkit.stack provisioned (real ARNs of its table,
  topic, secret and queues).
- A call is attributed to a function while that function's code runs: ``devkit.pipeline.load_handler``
  sets ``running_function`` while the module initialises and while the handler runs. Calls made by
  tests (setup, inspection) or by the emulated event sources are not attributed and not checked.
- A call is mapped to its IAM action and resource (table or index ARN, topic, secret, queue) and
  decided like IAM's identity-based policy evaluation: an explicit Deny wins, else an Allow whose
  Action and Resource patterns match, else an implicit deny. A denied call never reaches moto:
  botocore raises the service's own error (``AccessDeniedException`` for DynamoDB and Secrets
  Manager, ``AuthorizationError`` for SNS, ``AccessDenied`` for SQS) with AWS's message.
- Every attributed call is recorded (the ``iam_calls`` fixture). Code may swallow a denial (the
  publisher keeps an event SNS refused for the next run): so a test during which any call was
  denied fails at teardown, unless the test took the denials with ``iam_calls.take_denied()``.

Not modelled: conditions (erring on the side of denying: an Allow with a Condition grants nothing,
a Deny with one always applies), NotAction/NotResource (rejected), resource-based policies,
permission boundaries and SCPs. Calls whose resource is not worked out below must be allowed on ``"*"``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.handlers import BUILTIN_HANDLERS

from devkit.pipeline import RunningFunction, running_function
from devkit.stack import Stack
from devkit.stack.intrinsics import Resolver

# --------------------------------------------------------------------------- the rules AWS states

# Batch APIs that IAM authorises with the action of their single-item API.
# SQS: "You cannot set permissions explicitly for SendMessageBatch, DeleteMessageBatch, or
# ChangeMessageVisibilityBatch. Instead, setting permissions for SendMessage, DeleteMessage, or
# ChangeMessageVisibility sets permissions for the corresponding batch versions of the actions."
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api-actions.html
# SNS: "sns:Publish - Grants permission to both publish and publish batch to a topic or endpoint."
# https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-language-api-permissions-reference.html
# (DynamoDB's BatchGetItem and BatchWriteItem are IAM actions of their own: dynamodb:BatchWriteItem,
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html)
BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sns:PublishBatch": "sns:Publish",
}

# Where a service's signing name (botocore) is not its IAM service prefix.
IAM_PREFIXES = {"monitoring": "cloudwatch", "email": "ses"}

# How each service answers a call IAM denies: (error code, HTTP status). DynamoDB and Secrets Manager
# answer 400 AccessDeniedException, SNS 403 AuthorizationError, SQS 403 AccessDenied.
DENIAL_ERRORS = {
    "dynamodb": ("AccessDeniedException", 400),
    "secretsmanager": ("AccessDeniedException", 400),
    "sns": ("AuthorizationError", 403),
    "sqs": ("AccessDenied", 403),
}
DEFAULT_DENIAL_ERROR = ("AccessDeniedException", 403)

# The AWS managed policies SAM attaches to function roles, by what they allow (all on "*").
# https://docs.aws.amazon.com/lambda/latest/dg/security-iam-awsmanpol.html
# Only the actions known to be in them are listed: a missing one denies, it never allows too much.
# A role with a managed policy not listed here is refused: add its statements first.
AWS_MANAGED_POLICIES = {
    "service-role/AWSLambdaBasicExecutionRole": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
    "service-role/AWSLambdaSQSQueueExecutionRole": [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ],
    "AWSXrayWriteOnlyAccess": [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    ],
}
MANAGED_POLICY_ARN = re.compile(r"^arn:[\w-]+:iam::aws:policy/(.+)$")


# --------------------------------------------------------------------------- the roles, as SAM deploys them


@lru_cache(maxsize=8)
def _transform(template_json: str, region: str) -> dict[str, Any]:
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = json.loads(template_json)
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):  # local folders: `sam build` uploads them; only the shape matters here
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://local-build/{properties[key]}"

    def no_managed_policy_names() -> dict[str, str]:
        raise AssertionError("template.yaml names a managed policy by name; use its ARN")

    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    return translator.translate(template, parameter_values={}, get_managed_policy_map=no_managed_policy_names)


def transformed_template(template: dict[str, Any], region: str = "us-east-1") -> dict[str, Any]:
    """template.yaml as CloudFormation receives it after the AWS::Serverless transform."""
    return copy.deepcopy(_transform(json.dumps(template, sort_keys=True), region))


def function_roles(transformed: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Function logical id -> (its role's logical id, the role's properties), from a transformed template."""
    resources = transformed["Resources"]
    roles: dict[str, tuple[str, dict[str, Any]]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role = resource["Properties"]["Role"]
        if not (isinstance(role, dict) and "Fn::GetAtt" in role):
            raise NotImplementedError(f"{logical_id}: a role given as an ARN is not modelled by tests/aws_rules/iam.py")
        role_id = role["Fn::GetAtt"][0]
        roles[logical_id] = (role_id, resources[role_id]["Properties"])
    attached = [lid for lid, r in resources.items() if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")]
    if attached:
        raise NotImplementedError(f"policies attached from outside the roles are not modelled yet: {attached}")
    return roles


class StackResolver(Resolver):
    """devkit's intrinsic functions, against a provisioned stack (parameters at their defaults).

    What the local stack did not create resolves to a placeholder no real resource matches.
    """

    def __init__(self, stack: Stack):
        _, _, _, self.region, self.account_id, _ = stack.queue_arn.split(":", 5)
        # devkit.stack names each resource f"{prefix}-{LogicalId}"
        prefix = stack.table_name.removesuffix("-ActivityTable")
        super().__init__(stack.template, {}, prefix=prefix, region=self.region, account_id=lambda: self.account_id)
        self.refs.update(stack.physical_ids)
        self.attributes.update(stack.attributes)

    def ref(self, name: str) -> Any:
        if name in self.template.get("Resources", {}) and name not in self.refs:
            return f"<not provisioned locally: !Ref {name}>"
        return super().ref(name)

    def get_att(self, resource: str, attribute: str) -> Any:
        missing = f"<not provisioned locally: !GetAtt {resource}.{attribute}>"
        return self.attributes.get(resource, {}).get(attribute, missing)


@lru_cache(maxsize=1024)
def _pattern(text: str, *, ignore_case: bool) -> re.Pattern[str]:
    """An IAM Action or Resource value: '*' any run of characters, '?' any one character."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def action_matches(pattern: str, action: str) -> bool:
    """Whether an Action of a policy (wildcards allowed, case-insensitive as in IAM) covers an action."""
    return bool(_pattern(pattern, ignore_case=True).match(action))


@dataclass(frozen=True)
class Statement:
    effect: str  # Allow | Deny
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    origin: str  # "inline" (the template's own statements, policy templates included) or the managed policy
    conditional: bool = False

    def allows_action(self, action: str) -> bool:
        # Action names are case-insensitive in IAM.
        return any(action_matches(pattern, action) for pattern in self.actions)

    def applies(self, action: str, resource: str) -> bool:
        if self.conditional and self.effect == "Allow":
            return False  # conditions are not evaluated: erring on the side of denying, such an Allow grants nothing
        return self.allows_action(action) and any(
            _pattern(pattern, ignore_case=False).match(resource) for pattern in self.resources
        )


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


@dataclass
class RolePolicy:
    """What one function's role allows, resolved against a provisioned stack."""

    function: str
    role_arn: str
    statements: list[Statement]

    def granted_actions(self) -> set[str]:
        """The actions the template's own statements allow (managed policies left out: they serve Lambda itself)."""
        return {action for s in self.statements if s.origin == "inline" and s.effect == "Allow" for action in s.actions}

    def decide(self, action: str, resources: Iterable[str]) -> str | None:
        """None if every resource is allowed; else the end of AWS's message saying why not."""
        for resource in resources:
            if any(s.effect == "Deny" and s.applies(action, resource) for s in self.statements):
                return f"on resource: {resource} with an explicit deny in an identity-based policy"
            if not any(s.effect == "Allow" and s.applies(action, resource) for s in self.statements):
                return f"on resource: {resource} because no identity-based policy allows the {action} action"
        return None


def role_policies(stack: Stack) -> dict[str, RolePolicy]:
    """Function logical id -> its role's policy, for this stack (cached while the stack lives)."""
    with _POLICIES_LOCK:  # functions may run in several threads (the chaos test's pollers)
        cached = _POLICIES.get(id(stack))
        if cached is not None and cached[0]() is stack:
            return cached[1]
        policies = _role_policies(stack)
        for key in [key for key, (ref, _) in _POLICIES.items() if ref() is None]:
            del _POLICIES[key]  # stacks of finished tests
        _POLICIES[id(stack)] = (weakref.ref(stack), policies)
        return policies


def _role_policies(stack: Stack) -> dict[str, RolePolicy]:
    resolver = StackResolver(stack)
    transformed = transformed_template(stack.template, resolver.region)
    policies: dict[str, RolePolicy] = {}
    for function, (role_id, role) in function_roles(transformed).items():
        statements: list[Statement] = []
        for policy in role.get("Policies", ()):
            document = resolver.resolve(policy["PolicyDocument"])
            for raw in _as_tuple(document["Statement"]):
                if "NotAction" in raw or "NotResource" in raw:
                    raise NotImplementedError(f"{function}: NotAction/NotResource are not modelled")
                statements.append(
                    Statement(
                        raw["Effect"],
                        _as_tuple(raw["Action"]),
                        _as_tuple(raw["Resource"]),
                        "inline",
                        conditional="Condition" in raw,
                    )
                )
        for arn in resolver.resolve(role.get("ManagedPolicyArns", [])):
            match = MANAGED_POLICY_ARN.match(arn)
            if not match or match.group(1) not in AWS_MANAGED_POLICIES:
                raise NotImplementedError(
                    f"{function}: managed policy {arn} is unknown to tests/aws_rules/iam.py; add what it allows"
                )
            statements.append(Statement("Allow", tuple(AWS_MANAGED_POLICIES[match.group(1)]), ("*",), match.group(1)))
        # Lambda names the role session after the function; devkit.stack names that f"{prefix}-{LogicalId}".
        session = f"{resolver.prefix}-{role_id}/{resolver.prefix}-{function}"
        role_arn = f"arn:aws:sts::{resolver.account_id}:assumed-role/{session}"
        policies[function] = RolePolicy(function, role_arn, statements)
    return policies


_POLICIES: dict[int, tuple[weakref.ref, dict[str, RolePolicy]]] = {}
_POLICIES_LOCK = threading.Lock()


# --------------------------------------------------------------------------- from an API call to what IAM checks


def iam_action(service_model: Any, operation: str) -> str:
    """The IAM action that authorises an API operation (batch APIs by their single-item action)."""
    prefix = service_model.signing_name
    action = f"{IAM_PREFIXES.get(prefix, prefix)}:{operation}"
    return BATCH_ACTIONS.get(action, action)


def call_resources(prefix: str, params: dict[str, Any], stack: Stack) -> list[str]:
    """The ARNs a call acts on, as IAM sees them; ["*"] where this module does not work them out."""
    _, _, _, region, account_id, _ = stack.queue_arn.split(":", 5)
    if prefix == "dynamodb":
        tables = list(params.get("RequestItems") or {}) or ([params["TableName"]] if "TableName" in params else [])
        index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
        return [
            (table if table.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account_id}:table/{table}") + index
            for table in tables
        ] or ["*"]
    if prefix == "sns":
        arn = params.get("TopicArn") or params.get("TargetArn")
        return [arn] if arn else ["*"]
    if prefix == "sqs":
        if params.get("QueueUrl"):
            path = urlparse(params["QueueUrl"]).path.strip("/").split("/")
            return [f"arn:aws:sqs:{region}:{path[-2]}:{path[-1]}"]
        if params.get("QueueName"):
            return [f"arn:aws:sqs:{region}:{account_id}:{params['QueueName']}"]
        return ["*"]
    if prefix == "secretsmanager":
        secret = params.get("SecretId")
        if not secret:
            return ["*"]
        if secret.startswith("arn:"):
            return [secret]
        # A secret's ARN ends in its name, a hyphen and six random characters.
        named = re.compile(rf"arn:aws:secretsmanager:.*:secret:{re.escape(secret)}-\w{{6}}")
        known = [arn for arn in stack.physical_ids.values() if isinstance(arn, str) and named.fullmatch(arn)]
        return known[:1] or [f"arn:aws:secretsmanager:{region}:{account_id}:secret:{secret}"]
    return ["*"]


# --------------------------------------------------------------------------- recording and enforcing


@dataclass(frozen=True)
class Call:
    function: str  # logical id of the function whose code made the call
    operation: str  # e.g. "sns.PublishBatch"
    action: str  # e.g. "sns:Publish"
    resources: tuple[str, ...]
    denied: str | None  # AWS's reason, or None when allowed


@dataclass
class Calls:
    """Every AWS call attributed to a function during the current test (thread-safe)."""

    _calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def all(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def actions(self) -> dict[str, set[str]]:
        """Function logical id -> the IAM actions its code called."""
        used: dict[str, set[str]] = {}
        for call in self.all():
            used.setdefault(call.function, set()).add(call.action)
        return used

    def denied(self) -> list[Call]:
        return [call for call in self.all() if call.denied]

    def take_denied(self) -> list[Call]:
        """The denied calls, forgotten (a test that provokes denials takes them, and the teardown check passes)."""
        with self._lock:
            taken = [call for call in self._calls if call.denied]
            self._calls = [call for call in self._calls if not call.denied]
        return taken

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


CALLS = Calls()
_PARAMS_KEY = "aws_rules.iam.params"


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """before-parameter-build: keep the caller's parameters for the check (before-call sees them serialised)."""
    if running_function.get() is not None:
        context[_PARAMS_KEY] = params


def _check_call(model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
    """before-call: decide the call as IAM would; a denial is answered here, so the request never leaves."""
    running = running_function.get()
    if running is None:
        return None
    action = iam_action(model.service_model, model.name)
    prefix = action.split(":", 1)[0]
    resources = call_resources(prefix, context.get(_PARAMS_KEY) or {}, running.stack)
    policy = role_policies(running.stack).get(running.logical_id)
    if policy is None:
        raise AssertionError(f"{running.logical_id} is not a function of the transformed template")
    reason = policy.decide(action, resources)
    CALLS.record(Call(running.logical_id, f"{prefix}.{model.name}", action, tuple(resources), reason))
    if reason is None:
        return None
    code, status = DENIAL_ERRORS.get(prefix, DEFAULT_DENIAL_ERROR)
    message = f"User: {policy.role_arn} is not authorized to perform: {action} {reason}"
    request_id = str(uuid.uuid4())
    error: dict[str, Any] = {"Code": code, "Message": message}
    if prefix in ("sns", "sqs"):
        error["Type"] = "Sender"
    body = {
        "Error": error,
        "ResponseMetadata": {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": {"x-amzn-requestid": request_id},
            "RetryAttempts": 0,
        },
    }
    response = AWSResponse(url="", status_code=status, headers={"x-amzn-requestid": request_id}, raw=None)
    response._content = json.dumps({"__type": code, "message": message}).encode()
    return response, body


# Every botocore session created from now on (boto3's default one included: moto replaces it for each
# mock) registers these handlers, so every client of the functions' code is checked; so does boto3's
# current default session, if one exists already. A call the AWS limits plugin (limits.py) refuses is
# answered by its more specific before-call handler first, and is not seen here.
_HANDLERS = [("before-parameter-build", _keep_params), ("before-call", _check_call)]
BUILTIN_HANDLERS.extend(_HANDLERS)
if boto3.DEFAULT_SESSION is not None:
    for _event, _handler in _HANDLERS:
        boto3.DEFAULT_SESSION.events.register(_event, _handler)


@contextmanager
def acting_as(stack: Stack, logical_id: str) -> Iterator[None]:
    """Run the block's AWS calls as a function's code would run them: under its role."""
    token = running_function.set(RunningFunction(stack, logical_id))
    try:
        yield
    finally:
        running_function.reset(token)


@pytest.fixture(autouse=True)
def iam_calls() -> Calls:
    """The AWS calls the functions' code made during this test; the test fails if any was denied."""
    CALLS.clear()
    yield CALLS
    denied = CALLS.take_denied()
    CALLS.clear()
    if denied:
        lines = "\n".join(f"  {call.function}: {call.action} ({call.operation}) {call.denied}" for call in denied)
        pytest.fail(f"the function's role in template.yaml does not allow calls its code made:\n{lines}", pytrace=False)
