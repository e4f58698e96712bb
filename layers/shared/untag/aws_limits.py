"""The limits of real AWS that the service's own shapes must respect (moto enforces none of them).

Each number is AWS's documented one; the service is built so that nothing it sends can exceed
them (result events are summarised, publications are batched by bytes, request records are
bounded by the request caps). ``tests/aws_rules`` refuses in tests what AWS refuses.
"""

from __future__ import annotations

# SNS: "The maximum message size is 256 KiB (262,144 bytes)", message body and attributes together;
# a PublishBatch holds at most 10 entries, and "the total aggregate size of all messages" is at most
# 256 KiB. https://docs.aws.amazon.com/sns/latest/api/API_Publish.html,
# https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html
SNS_MESSAGE_MAX_BYTES = 262_144
SNS_BATCH_MAX_ENTRIES = 10
SNS_BATCH_MAX_BYTES = 262_144

# DynamoDB: "The maximum item size in DynamoDB is 400 KB", attribute names and values together;
# BatchWriteItem takes at most 25 put or delete requests, BatchGetItem at most 100 keys.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
DYNAMODB_ITEM_MAX_BYTES = 409_600
DYNAMODB_BATCH_WRITE_MAX_ITEMS = 25
DYNAMODB_BATCH_GET_MAX_KEYS = 100

# SQS: a message's visibility timeout is at most 12 hours.
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html
SQS_MAX_VISIBILITY_SECONDS = 43_200


def sns_entry_bytes(message: str, attributes: dict[str, dict[str, str]]) -> int:
    """What SNS counts against its 256 KiB: the UTF-8 message plus each attribute's name, type and value."""
    size = len(message.encode("utf-8"))
    for name, attribute in attributes.items():
        size += len(name.encode()) + len(attribute.get("DataType", "").encode())
        size += len(str(attribute.get("StringValue", "")).encode())
    return size
