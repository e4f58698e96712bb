"""AWS's size and count limits, enforced over moto: what AWS refuses, the tests' AWS refuses too.

moto 5.2.5 lets through much that AWS refuses (an SNS batch over 256 KiB, 26 writes in one
BatchWriteItem, a 70 KB secret, multi-byte text measured in characters...). This plugin refuses
those calls the way AWS does: a ``botocore.exceptions.ClientError`` (the modelled subclass where
botocore has one) with AWS's error code, message and HTTP status 400, built from the bytes AWS
would send and parsed by botocore's own parser for the service's protocol.

How: handlers on botocore's events, added to ``botocore.handlers.BUILTIN_HANDLERS`` so every
botocore session created afterwards (every ``boto3.client``, the product's and the harness's)
carries them, whether the client talks to ``mock_aws`` or to a ``ThreadedMotoServer``:

* ``before-parameter-build.<service>.<Operation>`` reads the call's parameters and decides;
* ``before-call.<service>.<Operation>`` answers a refused call with AWS's error response, so the
  request never reaches moto.

Two rules need moto's state rather than the request, and are enforced inside moto (same process):

* UpdateItem (also inside TransactWriteItems): the *resulting* item must stay within 400 KB.
  ``DynamoDBBackend.update_item`` is wrapped: an update whose result is too large is undone and
  refused. moto's own item-size check (``LimitedSizeDict``) is switched off while the rules are
  on: it refuses at 405,000 bytes by its own measure (AWS: 409,600 by the documented one) and, on
  UpdateItem, leaves the part of the update applied before the limit was hit.
* SendMessage(Batch): the queue's ``MaximumMessageSize`` is read from moto's SQS backend.

Limits moto 5.2.5 already enforces as AWS does are left to it (and covered by the tests in
tests/infrastructure/test_aws_limits.py): SNS PublishBatch over 10 entries and repeated entry ids,
SQS SendMessageBatch over 10 entries and repeated ids, ChangeMessageVisibility over 43,200 s
(ChangeMessageVisibilityBatch: reported per entry, as AWS does), BatchGetItem over 100 keys,
TransactWriteItems over 100 actions.

Registered for every test by tests/conftest.py (``pytest_plugins``); the autouse fixture turns the
rules on around each test (``@pytest.mark.aws_limits_off`` opts a test out). Python processes the
tests start (``python -m devkit.runner`` in tests/e2e) get the rules through
``tests/aws_rules/_site/sitecustomize.py``. docs/aws-limits.md lists every limit and its source.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

# --------------------------------------------------------------------------- the limits (AWS's numbers)

# SNS Publish / PublishBatch: "messages must be UTF-8 encoded strings and at most 256 KB in size
# (262,144 bytes, not 262,144 characters)", https://docs.aws.amazon.com/sns/latest/api/API_Publish.html;
# "All parts of the message attribute, including name, type, and value, are included in the message
# size restriction, which is 256 KiB (262,144 bytes) by default and is determined by the topic's
# MaximumMessageSize attribute", https://docs.aws.amazon.com/sns/latest/api/API_MessageAttributeValue.html;
# over it "Amazon SNS returns an InvalidParameter error on publish",
# https://docs.aws.amazon.com/sns/latest/dg/large-message-payloads.html. (moto 5.2.5 has no
# MaximumMessageSize topic attribute, so the default applies to every topic here.)
SNS_MAX_MESSAGE_BYTES = 262_144
# PublishBatch: "Publishes up to 10 messages"; "The maximum allowed individual message size and the
# maximum total payload size (the sum of the individual lengths of all of the batched messages) are
# both 256 KB (262,144 bytes)", https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html
SNS_MAX_BATCH_ENTRIES = 10

# SQS: MaximumMessageSize "Valid values: An integer from 1,024 bytes (1 KiB) to 1,048,576 bytes
# (1 MiB). Default: 1,048,576 bytes (1 MiB)",
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html;
# "All parts of the message attribute, including Name, Type, and Value, are part of the message size
# restriction (1 MiB or 1,048,576 bytes)",
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html
SQS_DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
# SendMessageBatch: "The maximum allowed individual message size and the maximum total payload size
# (the sum of the individual lengths of all of the batched messages) are both 1 MiB 1,048,576 bytes",
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html
SQS_MAX_BATCH_BYTES = 1_048_576
# "the maximum number of entries you can include in a single SendMessageBatch, DeleteMessageBatch, or
# ChangeMessageVisibilityBatch request is 10" (TooManyEntriesInBatchRequest),
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessageBatch.html
SQS_MAX_BATCH_ENTRIES = 10

# DynamoDB: "The maximum item size in DynamoDB is 400 KB, which includes both attribute name binary
# length (UTF-8 length) and attribute value lengths"; "DynamoDB denotes 1 KB = 1024 bytes",
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html
DYNAMODB_MAX_ITEM_BYTES = 400 * 1024  # 409,600
# BatchWriteItem: "up to 25 item put or delete operations",
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html
DYNAMODB_MAX_BATCH_WRITES = 25
# TransactWriteItems: "up to 100 action requests", BatchGetItem: "as many as 100 items" (moto refuses more itself),
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html,
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html
DYNAMODB_MAX_TRANSACT_ACTIONS = 100
DYNAMODB_MAX_BATCH_GET_KEYS = 100

# Secrets Manager: SecretString "Length Constraints: Minimum length of 1. Maximum length of 65536."
# (SecretBinary the same), https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html;
# quota "Secret value size: 65,536 bytes",
# https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html
SECRET_MAX_BYTES = 65_536


# --------------------------------------------------------------------------- sizes, as AWS counts them


def _length(value: Any) -> int:
    """Bytes of a string (UTF-8) or of a blob as the SDK sends it (a str blob is sent as its UTF-8)."""
    if value is None:
        return 0
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if hasattr(value, "read"):  # a file-like blob
        position = value.tell()
        size = len(value.read())
        value.seek(position)
        return size
    return len(str(value).encode("utf-8"))


def message_attributes_size(attributes: dict[str, dict[str, Any]] | None) -> int:
    """SNS and SQS: each attribute's name, data type and value count toward the message size."""
    size = 0
    for name, attribute in (attributes or {}).items():
        size += _length(name)
        for part in attribute.values():  # DataType, StringValue or BinaryValue (and SQS's unused list values)
            size += sum(_length(item) for item in part) if isinstance(part, (list, tuple)) else _length(part)
    return size


def message_size(body: str | None, attributes: dict[str, dict[str, Any]] | None) -> int:
    return _length(body) + message_attributes_size(attributes)


def _number_size(text: str) -> int:
    """ "approximately (1 byte per two significant digits) + (1 byte)"; leading and trailing zeroes trimmed."""
    mantissa = str(text).strip().lstrip("+-").lower().split("e")[0]
    significant = mantissa.replace(".", "").strip("0")
    return (len(significant) + 1) // 2 + 1


def attribute_value_size(value: dict[str, Any], *, binary_as_base64: bool = False) -> int:
    """One AttributeValue, sized as
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html says.

    Strings: UTF-8 bytes. Numbers: see ``_number_size``. Binary: raw bytes. Null, Boolean: 1 byte.
    List, Map: 3 bytes + 1 byte per element + the elements (a map's keys counted as names).
    Sets: the sum of their members. ``binary_as_base64``: binary values are base64 text (moto's storage).
    """
    if not isinstance(value, dict) or len(value) != 1:  # not an AttributeValue: its JSON, roughly
        return _length(json.dumps(value, default=str))
    ((kind, data),) = value.items()
    if kind == "S":
        return _length(data)
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(base64.b64decode(data)) if binary_as_base64 and isinstance(data, str) else _length(data)
    if kind in ("NULL", "BOOL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_value_size({kind[0]: member}, binary_as_base64=binary_as_base64) for member in data)
    if kind == "L":
        return 3 + sum(1 + attribute_value_size(element, binary_as_base64=binary_as_base64) for element in data)
    if kind == "M":
        return 3 + sum(
            1 + _length(name) + attribute_value_size(element, binary_as_base64=binary_as_base64)
            for name, element in data.items()
        )
    return _length(json.dumps(data, default=str))  # a type this code does not know: its JSON, roughly


def item_size(item: dict[str, dict[str, Any]], *, binary_as_base64: bool = False) -> int:
    """An item's size: the sum of its attribute names' UTF-8 lengths and its values' sizes."""
    return sum(
        _length(name) + attribute_value_size(value, binary_as_base64=binary_as_base64) for name, value in item.items()
    )


# --------------------------------------------------------------------------- refusals


@dataclass(frozen=True)
class Refusal:
    """An error response as AWS sends it: ``code`` as the client reports it (``Error.Code``)."""

    code: str
    message: str
    wire_type: str = ""  # the JSON protocol's __type, where it differs from the code
    query_error: str = ""  # SQS (JSON protocol, query-compatible): the x-amzn-query-error header

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _dynamodb_validation(message: str) -> Refusal:
    return Refusal("ValidationException", message, wire_type="com.amazon.coral.validate#ValidationException")


def _sqs_error(name: str, message: str, *, legacy_prefix: bool = True) -> Refusal:
    """SQS answers in JSON with the legacy query code in x-amzn-query-error: botocore reports that code
    (``AWS.SimpleQueueService.TooManyEntriesInBatchRequest``) and raises the modelled exception class."""
    query_code = f"AWS.SimpleQueueService.{name}" if legacy_prefix else name
    return Refusal(query_code, message, wire_type=f"com.amazonaws.sqs#{name}", query_error=f"{query_code};Sender")


ITEM_TOO_LARGE = "Item size has exceeded the maximum allowed size"
# UpdateItem's ValidationException cases include "Item size to update has exceeded the maximum allowed
# size.", https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html
UPDATE_TOO_LARGE = "Item size to update has exceeded the maximum allowed size"


def _sqs_message_too_long(limit: int) -> str:
    return f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes."


def _distinct(ids: list[Any]) -> bool:
    return len(set(ids)) == len(ids)


@dataclass
class Call:
    """What a rule sees of one API call."""

    params: dict[str, Any]
    region: str
    context: dict[str, Any] = field(default_factory=dict)


# ---- SNS


def _sns_publish(call: Call) -> Refusal | None:
    size = message_size(call.params.get("Message"), call.params.get("MessageAttributes"))
    if size > SNS_MAX_MESSAGE_BYTES:
        return Refusal("InvalidParameter", "Invalid parameter: Message too long")
    return None


def _sns_publish_batch(call: Call) -> Refusal | None:
    entries = call.params.get("PublishBatchRequestEntries") or []
    if len(entries) > SNS_MAX_BATCH_ENTRIES or not _distinct([entry.get("Id") for entry in entries]):
        return None  # moto refuses these itself, as AWS does (TooManyEntriesInBatchRequest, BatchEntryIdsNotDistinct)
    total = sum(message_size(entry.get("Message"), entry.get("MessageAttributes")) for entry in entries)
    if total > SNS_MAX_MESSAGE_BYTES:  # each entry is within the total: the total is the binding limit
        # The description of BatchRequestTooLongException in the SNS API model.
        return Refusal(
            "BatchRequestTooLong", "The length of all the batch messages put together is more than the limit."
        )
    return None


# ---- SQS


def queue_maximum_message_size(queue_url: str, region: str) -> int:
    """The queue's MaximumMessageSize, read from moto (this process); AWS's default if moto has no such queue."""
    try:
        from moto.sqs.models import sqs_backends

        account, name = queue_url.rstrip("/").split("/")[-2:]
        queue = sqs_backends[account][region].queues.get(name)
        if queue is not None:
            return int(getattr(queue, "maximum_message_size", SQS_DEFAULT_MAX_MESSAGE_BYTES))
    except Exception:  # noqa: BLE001 - not moto's URL, no moto: the documented default
        pass
    return SQS_DEFAULT_MAX_MESSAGE_BYTES


def _too_many_entries(entries: list[Any]) -> Refusal | None:
    if len(entries) > SQS_MAX_BATCH_ENTRIES:
        return _sqs_error(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {SQS_MAX_BATCH_ENTRIES}. You have sent {len(entries)}.",
        )
    return None


def _sqs_send_message(call: Call) -> Refusal | None:
    limit = queue_maximum_message_size(call.params.get("QueueUrl", ""), call.region)
    if message_size(call.params.get("MessageBody"), call.params.get("MessageAttributes")) > limit:
        return _sqs_error("InvalidParameterValue", _sqs_message_too_long(limit), legacy_prefix=False)
    return None


def _sqs_send_message_batch(call: Call) -> Refusal | None:
    entries = call.params.get("Entries") or []
    if len(entries) > SQS_MAX_BATCH_ENTRIES or not _distinct([entry.get("Id") for entry in entries]):
        return None  # moto refuses these itself, as AWS does
    sizes = [message_size(entry.get("MessageBody"), entry.get("MessageAttributes")) for entry in entries]
    if sum(sizes) > SQS_MAX_BATCH_BYTES:
        return _sqs_error(
            "BatchRequestTooLong",
            f"Batch requests cannot be longer than {SQS_MAX_BATCH_BYTES} bytes. You have sent {sum(sizes)} bytes.",
        )
    # An entry over the queue's MaximumMessageSize fails alone, reported in Failed (the batch call itself
    # succeeds), as LocalStack's AWS-validated SQS provider does. It is taken out of the request here and
    # its failure added to the answer (after-call).
    limit = queue_maximum_message_size(call.params.get("QueueUrl", ""), call.region)
    too_long = [entry for entry, size in zip(entries, sizes, strict=True) if size > limit]
    if too_long:
        call.context[_FAILED_ENTRIES] = [
            {
                "Id": entry.get("Id"),
                "SenderFault": True,
                "Code": "InvalidParameterValue",
                "Message": _sqs_message_too_long(limit),
            }
            for entry in too_long
        ]
        call.params["Entries"] = [entry for entry in entries if all(entry is not bad for bad in too_long)]
        call.context[_NOTHING_TO_SEND] = not call.params["Entries"]
    return None


def _sqs_batch_entries(call: Call) -> Refusal | None:
    return _too_many_entries(call.params.get("Entries") or [])


# ---- DynamoDB


def _put_too_large(item: dict[str, Any] | None) -> Refusal | None:
    if item and item_size(item) > DYNAMODB_MAX_ITEM_BYTES:
        return _dynamodb_validation(ITEM_TOO_LARGE)
    return None


def _dynamodb_put_item(call: Call) -> Refusal | None:
    return _put_too_large(call.params.get("Item"))


def _dynamodb_batch_write_item(call: Call) -> Refusal | None:
    requests = [request for table in (call.params.get("RequestItems") or {}).values() for request in table]
    if len(requests) > DYNAMODB_MAX_BATCH_WRITES:
        return _dynamodb_validation("Too many items requested for the BatchWriteItem call")
    for request in requests:
        refusal = _put_too_large((request.get("PutRequest") or {}).get("Item"))
        if refusal:
            return refusal
    return None


def _dynamodb_transact_write_items(call: Call) -> Refusal | None:
    actions = call.params.get("TransactItems") or []
    if len(actions) > DYNAMODB_MAX_TRANSACT_ACTIONS:
        return None  # moto refuses it itself, as AWS does (ValidationException)
    for action in actions:
        refusal = _put_too_large((action.get("Put") or {}).get("Item"))
        if refusal:
            return refusal
    return None  # an Update's resulting item is checked inside moto (see guard_update_item)


# ---- Secrets Manager


def _secret_value(call: Call) -> Refusal | None:
    for name, member in (("SecretString", "secretString"), ("SecretBinary", "secretBinary")):
        if name in call.params and _length(call.params[name]) > SECRET_MAX_BYTES:
            # AWS's generic constraint-violation message (the value itself is sensitive, so not quoted).
            return Refusal(
                "ValidationException",
                f"1 validation error detected: Value at '{member}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {SECRET_MAX_BYTES}",
                wire_type="com.amazon.coral.validate#ValidationException",
            )
    return None


RULES: dict[tuple[str, str], Callable[[Call], Refusal | None]] = {
    ("sns", "Publish"): _sns_publish,
    ("sns", "PublishBatch"): _sns_publish_batch,
    ("sqs", "SendMessage"): _sqs_send_message,
    ("sqs", "SendMessageBatch"): _sqs_send_message_batch,
    ("sqs", "DeleteMessageBatch"): _sqs_batch_entries,
    ("sqs", "ChangeMessageVisibilityBatch"): _sqs_batch_entries,
    ("dynamodb", "PutItem"): _dynamodb_put_item,
    ("dynamodb", "BatchWriteItem"): _dynamodb_batch_write_item,
    ("dynamodb", "TransactWriteItems"): _dynamodb_transact_write_items,
    ("secrets-manager", "PutSecretValue"): _secret_value,
    ("secrets-manager", "CreateSecret"): _secret_value,
    ("secrets-manager", "UpdateSecret"): _secret_value,
}


# --------------------------------------------------------------------------- botocore: answering as AWS does

_REFUSAL = "aws_rules.limits.refusal"
_FAILED_ENTRIES = "aws_rules.limits.failed_entries"
_NOTHING_TO_SEND = "aws_rules.limits.nothing_to_send"
_enforcing = {"on": False}


def enforcing() -> bool:
    return _enforcing["on"]


class _Body:
    def __init__(self, content: bytes):
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


def aws_response(operation_model: Any, status: int, payload: dict[str, Any] | Refusal) -> tuple[Any, dict[str, Any]]:
    """(http response, parsed) for ``before-call``: the bytes AWS sends, parsed by botocore's parser for
    the service's protocol, with the modelled error fields added as botocore's endpoint does."""
    from botocore.awsrequest import AWSResponse
    from botocore.endpoint import convert_to_response_dict
    from botocore.parsers import create_parser

    service_model = operation_model.service_model
    protocol = service_model.resolved_protocol
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id}
    if protocol == "json":
        headers["Content-Type"] = f"application/x-amz-json-{service_model.metadata.get('jsonVersion', '1.0')}"
        if isinstance(payload, Refusal):
            if payload.query_error:
                headers["x-amzn-query-error"] = payload.query_error
            document: dict[str, Any] = {"__type": payload.wire_type or payload.code, "message": payload.message}
        else:
            document = payload
        body = json.dumps(document).encode("utf-8")
    elif protocol == "query" and isinstance(payload, Refusal):
        namespace = service_model.metadata.get("xmlNamespace", "")
        body = (
            f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type><Code>{escape(payload.code)}</Code>'
            f"<Message>{escape(payload.message)}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        ).encode()
        headers["Content-Type"] = "text/xml"
    else:  # pragma: no cover - every rule here is for a json or query service
        raise NotImplementedError(f"{protocol} answers for {operation_model.name}")
    headers["Content-Length"] = str(len(body))
    http = AWSResponse(f"https://{service_model.endpoint_prefix}.amazonaws.com/", status, headers, _Body(body))
    response = convert_to_response_dict(http, operation_model)
    parser = create_parser(protocol)
    parsed = parser.parse(response, operation_model.output_shape)
    if status >= 300:
        error_shape = service_model.shape_for_error_code(parsed.get("Error", {}).get("Code"))
        if error_shape is not None:
            parsed.update(parser.parse(response, error_shape))
    return http, parsed


def _service(model: Any) -> str:
    return model.service_model.service_id.hyphenize()


def _decide(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    """before-parameter-build: apply the operation's rule to the call's parameters."""
    for key in (_REFUSAL, _FAILED_ENTRIES, _NOTHING_TO_SEND):
        context.pop(key, None)
    if not enforcing():
        return
    rule = RULES.get((_service(model), model.name))
    if rule is None:
        return
    refusal = rule(
        Call(params, context.get("client_region") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), context)
    )
    if refusal is not None:
        context[_REFUSAL] = refusal


def _answer(model: Any, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
    """before-call: a refused call gets AWS's error response instead of reaching moto."""
    refusal = context.get(_REFUSAL)
    if refusal is not None:
        return aws_response(model, 400, refusal)
    if context.get(_NOTHING_TO_SEND):  # SendMessageBatch, every entry too long: AWS answers 200, all Failed
        return aws_response(model, 200, {"Successful": [], "Failed": context[_FAILED_ENTRIES]})
    return None


def _add_failed_entries(
    parsed: dict[str, Any], model: Any, context: dict[str, Any], http_response: Any, **_: Any
) -> None:
    """after-call (SendMessageBatch): the entries taken out of the request are reported as failed."""
    failed = context.get(_FAILED_ENTRIES)
    if failed and http_response.status_code < 300 and not context.get(_REFUSAL) and not context.get(_NOTHING_TO_SEND):
        known = {entry.get("Id") for entry in parsed.get("Failed", [])}
        parsed.setdefault("Failed", []).extend(entry for entry in failed if entry["Id"] not in known)
        parsed.setdefault("Successful", [])


def _handlers() -> list[tuple[Any, ...]]:
    from botocore.handlers import REGISTER_LAST

    handlers: list[tuple[Any, ...]] = []
    for service in sorted({service for service, _ in RULES}):
        # At the service's level and last: after boto3's own handlers there (the DynamoDB resource layer
        # serialises values on "before-parameter-build.dynamodb"; botocore calls a more specific event's
        # handlers first). ``_decide`` picks the operation's rule.
        handlers.append((f"before-parameter-build.{service}", _decide, REGISTER_LAST))
    for service, operation in RULES:
        handlers.append((f"before-call.{service}.{operation}", _answer))
    handlers.append(("after-call.sqs.SendMessageBatch", _add_failed_entries))
    return handlers


_installed = {"done": False}
_install_lock = threading.Lock()


def install() -> None:
    """Add the handlers to every botocore session created from now on (and to boto3's current default one).

    Once per process; the handlers do nothing while the rules are off (``enforcing()``).
    """
    with _install_lock:
        if _installed["done"]:
            return
        from botocore import handlers as botocore_handlers

        botocore_handlers.BUILTIN_HANDLERS.extend(_handlers())
        try:
            import boto3

            if boto3.DEFAULT_SESSION is not None:
                events = boto3.DEFAULT_SESSION._session.get_component("event_emitter")  # noqa: SLF001
                for event, handler, *last in _handlers():
                    (events.register_last if last else events.register)(event, handler)
        except ImportError:  # pragma: no cover
            pass
        _installed["done"] = True


# --------------------------------------------------------------------------- moto: the resulting item of an update

_update_lock = threading.RLock()


def _plain(value: Any) -> dict[str, Any]:
    """A moto DynamoType as the wire's AttributeValue (binary stays as moto keeps it)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if isinstance(value, DynamoType):
        if value.is_list():
            return {value.type: [_plain(element) for element in value.value]}
        if value.is_map():
            return {value.type: {name: _plain(element) for name, element in value.value.items()}}
        return {value.type: value.value}
    return value


def moto_item_size(item: Any) -> int:
    """The size of an item moto stores (moto.dynamodb.models.dynamo_type.Item)."""
    return item_size({name: _plain(value) for name, value in item.attrs.items()}, binary_as_base64=True)


def guard_update_item(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap DynamoDBBackend.update_item: an update whose resulting item exceeds 400 KB is undone and refused."""

    @functools.wraps(original)
    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if not enforcing():
            return original(self, table_name, key, *args, **kwargs)
        from moto.dynamodb.exceptions import ItemSizeToUpdateTooLarge

        with _update_lock:
            try:
                table = self.get_table(table_name)
                before = copy.deepcopy(self.get_item(table_name, key))
            except Exception:  # noqa: BLE001 - a bad table or key: moto's own answer
                return original(self, table_name, key, *args, **kwargs)
            item = original(self, table_name, key, *args, **kwargs)
            if item is None or moto_item_size(item) <= DYNAMODB_MAX_ITEM_BYTES:
                return item
            # Not written, as AWS: put back what was there (or nothing).
            slot = table.items[item.hash_key] if item.range_key is not None else table.items
            slot_key = item.range_key if item.range_key is not None else item.hash_key
            if before is None:
                slot.pop(slot_key, None)
            else:
                slot[slot_key] = before
            raise ItemSizeToUpdateTooLarge()

    update_item.aws_rules_guard = True  # type: ignore[attr-defined]
    return update_item


@contextmanager
def moto_item_size_rules() -> Iterator[None]:
    """moto's own item-size check off (wrong limit, applied mid-update), the resulting-item guard on."""
    try:
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.dynamo_type import LimitedSizeDict
    except ImportError:  # pragma: no cover - no moto: nothing to adjust
        yield
        return
    saved_setitem = LimitedSizeDict.__dict__.get("__setitem__")
    saved_update = DynamoDBBackend.__dict__["update_item"]
    LimitedSizeDict.__setitem__ = dict.__setitem__  # type: ignore[method-assign,assignment]
    if not getattr(saved_update, "aws_rules_guard", False):
        DynamoDBBackend.update_item = guard_update_item(saved_update)  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoDBBackend.update_item = saved_update  # type: ignore[method-assign]
        if saved_setitem is not None:
            LimitedSizeDict.__setitem__ = saved_setitem  # type: ignore[method-assign]


@contextmanager
def enforced() -> Iterator[None]:
    """The rules on for the duration (nested uses keep them on until the outermost ends)."""
    install()
    previous = _enforcing["on"]
    _enforcing["on"] = True
    try:
        if previous:
            yield
        else:
            with moto_item_size_rules():
                yield
    finally:
        _enforcing["on"] = previous


_process_rules: list[Any] = []


def enforce_for_process() -> None:
    """The rules on until the process ends (for a process a test started: see _site/sitecustomize.py)."""
    if not _process_rules:
        manager = enforced()
        manager.__enter__()
        _process_rules.append(manager)  # never exited


# --------------------------------------------------------------------------- pytest

SITE_DIR = Path(__file__).resolve().parent / "_site"
ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT_SWITCH = "AWS_RULES_LIMITS"

install()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "aws_limits_off: run the test without the AWS limits of tests/aws_rules/limits.py"
    )


@pytest.fixture(autouse=True)
def aws_limits(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """AWS's size and count limits on for the test (and for the Python processes it starts)."""
    if request.node.get_closest_marker("aws_limits_off"):
        yield
        return
    monkeypatch.setenv(ENVIRONMENT_SWITCH, "1")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(SITE_DIR), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    with enforced():
        yield
