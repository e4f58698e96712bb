"""The AWS limits every test runs under (tests/aws_rules/limits.py): just under each one passes, just over is
refused with AWS's error code and HTTP 400, and a refused call changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from tests.aws_rules.limits import (
    DYNAMODB_MAX_ITEM_BYTES,
    SECRET_MAX_BYTES,
    SNS_MAX_MESSAGE_BYTES,
    SQS_DEFAULT_MAX_MESSAGE_BYTES,
    item_size,
    message_size,
)

ROOT = Path(__file__).resolve().parents[2]
MIB = 1_048_576
ATTRIBUTE = {"kind": {"DataType": "String", "StringValue": "x"}}  # 4 + 6 + 1 = 11 bytes


def refused(call, code: str, *, message: str | None = None) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert error["Code"] == code, caught.value.response
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    if message is not None:
        assert error["Message"] == message
    return caught.value


# --------------------------------------------------------------------------- sizes as AWS documents them


def test_message_size_counts_utf8_bytes_and_every_part_of_the_attributes():
    assert message_size("é", None) == 2
    assert message_size("ab", ATTRIBUTE) == 2 + 11
    assert message_size("", {"b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}) == 1 + 6 + 2


def test_item_size_follows_the_documented_rules():
    assert item_size({"pk": {"S": "a"}}) == 3
    assert item_size({"é": {"S": "é"}}) == 4
    assert item_size({"n": {"N": "123.4500"}}) == 1 + 4  # 5 significant digits: 3 bytes + 1
    assert item_size({"n": {"N": "-0.001"}}) == 1 + 2
    assert item_size({"b": {"B": b"\x00\x01\x02"}, "t": {"BOOL": True}, "z": {"NULL": True}}) == 4 + 2 + 2
    assert item_size({"l": {"L": []}}) == 1 + 3
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"key": {"S": "v"}}}}) == 1 + 3 + 1 + 3 + 1
    assert item_size({"s": {"SS": ["a", "bc"]}}) == 1 + 3


# --------------------------------------------------------------------------- SNS


@pytest.fixture
def topic(aws):
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    arn = sns.create_topic(Name="limits")["TopicArn"]
    queue = sqs.create_queue(QueueName="limits-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return sns, arn, lambda: sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])


def test_sns_publish_takes_256_kib_of_message_and_attributes_and_refuses_a_byte_more(topic):
    sns, arn, delivered = topic
    sns.publish(TopicArn=arn, Message="a" * (SNS_MAX_MESSAGE_BYTES - 11), MessageAttributes=ATTRIBUTE)
    sns.publish(TopicArn=arn, Message="é" * (SNS_MAX_MESSAGE_BYTES // 2))

    error = refused(
        lambda: sns.publish(TopicArn=arn, Message="a" * (SNS_MAX_MESSAGE_BYTES - 10), MessageAttributes=ATTRIBUTE),
        "InvalidParameter",
        message="Invalid parameter: Message too long",
    )
    assert isinstance(error, sns.exceptions.InvalidParameterException)
    refused(lambda: sns.publish(TopicArn=arn, Message="é" * (SNS_MAX_MESSAGE_BYTES // 2) + "a"), "InvalidParameter")
    assert len(delivered()) == 2  # the refused ones never reached moto


def test_sns_publish_batch_takes_256_kib_in_all_and_refuses_a_byte_more(topic):
    sns, arn, delivered = topic
    share = SNS_MAX_MESSAGE_BYTES // 4
    sns.publish_batch(
        TopicArn=arn, PublishBatchRequestEntries=[{"Id": str(n), "Message": "a" * share} for n in range(4)]
    )

    entries = [{"Id": str(n), "Message": "a" * share} for n in range(3)]
    entries.append({"Id": "3", "Message": "a" * (share - 10), "MessageAttributes": ATTRIBUTE})
    error = refused(lambda: sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=entries), "BatchRequestTooLong")
    assert isinstance(error, sns.exceptions.BatchRequestTooLongException)
    refused(
        lambda: sns.publish_batch(
            TopicArn=arn, PublishBatchRequestEntries=[{"Id": "big", "Message": "a" * (SNS_MAX_MESSAGE_BYTES + 1)}]
        ),
        "BatchRequestTooLong",
    )
    assert len(delivered()) == 4


def test_sns_publish_batch_takes_10_entries_with_distinct_ids(topic):  # moto's own checks
    sns, arn, _ = topic
    sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=[{"Id": str(n), "Message": "m"} for n in range(10)])

    error = refused(
        lambda: sns.publish_batch(
            TopicArn=arn, PublishBatchRequestEntries=[{"Id": str(n), "Message": "m"} for n in range(11)]
        ),
        "TooManyEntriesInBatchRequest",
    )
    assert isinstance(error, sns.exceptions.TooManyEntriesInBatchRequestException)
    refused(
        lambda: sns.publish_batch(
            TopicArn=arn, PublishBatchRequestEntries=[{"Id": "same", "Message": "m"}, {"Id": "same", "Message": "n"}]
        ),
        "BatchEntryIdsNotDistinct",
    )


# --------------------------------------------------------------------------- SQS


@pytest.fixture
def sqs(aws):
    return boto3.client("sqs")


@pytest.fixture
def queue(sqs):
    return sqs.create_queue(QueueName="limits")["QueueUrl"]


def depth(sqs, url: str) -> int:
    return int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )


def test_sqs_queues_take_1_mib_by_default(sqs, queue):
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["MaximumMessageSize"])["Attributes"]
    assert int(attributes["MaximumMessageSize"]) == SQS_DEFAULT_MAX_MESSAGE_BYTES == MIB


def test_sqs_send_message_takes_the_queue_maximum_of_body_and_attributes_and_refuses_a_byte_more(sqs, queue):
    sqs.send_message(QueueUrl=queue, MessageBody="a" * (MIB - 11), MessageAttributes=ATTRIBUTE)
    sqs.send_message(QueueUrl=queue, MessageBody="é" * (MIB // 2))

    message = f"One or more parameters are invalid. Reason: Message must be shorter than {MIB} bytes."
    refused(
        lambda: sqs.send_message(QueueUrl=queue, MessageBody="a" * (MIB - 10), MessageAttributes=ATTRIBUTE),
        "InvalidParameterValue",
        message=message,
    )
    refused(lambda: sqs.send_message(QueueUrl=queue, MessageBody="é" * (MIB // 2) + "a"), "InvalidParameterValue")
    assert depth(sqs, queue) == 2


def test_sqs_send_message_follows_a_smaller_maximum_message_size(sqs):
    small = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    sqs.send_message(QueueUrl=small, MessageBody="a" * 1024)
    refused(
        lambda: sqs.send_message(QueueUrl=small, MessageBody="a" * 1025),
        "InvalidParameterValue",
        message="One or more parameters are invalid. Reason: Message must be shorter than 1024 bytes.",
    )

    # In a batch, an entry over the queue's maximum fails alone; the others are sent.
    answer = sqs.send_message_batch(
        QueueUrl=small, Entries=[{"Id": "fits", "MessageBody": "a" * 1024}, {"Id": "long", "MessageBody": "é" * 513}]
    )
    assert [entry["Id"] for entry in answer["Successful"]] == ["fits"]
    assert [(entry["Id"], entry["Code"], entry["SenderFault"]) for entry in answer["Failed"]] == [
        ("long", "InvalidParameterValue", True)
    ]
    only_long = sqs.send_message_batch(QueueUrl=small, Entries=[{"Id": "long", "MessageBody": "a" * 1025}])
    assert only_long["Successful"] == [] and [entry["Id"] for entry in only_long["Failed"]] == ["long"]
    assert depth(sqs, small) == 2


def test_sqs_send_message_batch_takes_1_mib_in_all_and_refuses_a_byte_more(sqs, queue):
    share = MIB // 4
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(n), "MessageBody": "a" * share} for n in range(4)])

    entries = [{"Id": str(n), "MessageBody": "a" * share} for n in range(3)]
    entries.append({"Id": "3", "MessageBody": "a" * (share - 10), "MessageAttributes": ATTRIBUTE})
    error = refused(
        lambda: sqs.send_message_batch(QueueUrl=queue, Entries=entries),
        "AWS.SimpleQueueService.BatchRequestTooLong",
        message=f"Batch requests cannot be longer than {MIB} bytes. You have sent {MIB + 1} bytes.",
    )
    assert isinstance(error, sqs.exceptions.BatchRequestTooLong)
    assert depth(sqs, queue) == 4


def test_sqs_batches_take_10_entries(sqs, queue):
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(n), "MessageBody": "m"} for n in range(10)])
    error = refused(
        lambda: sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(n), "MessageBody": "m"} for n in range(11)]),
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    )  # moto's own check
    assert isinstance(error, sqs.exceptions.TooManyEntriesInBatchRequest)
    refused(
        lambda: sqs.send_message_batch(
            QueueUrl=queue, Entries=[{"Id": "same", "MessageBody": "m"}, {"Id": "same", "MessageBody": "n"}]
        ),
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    )  # moto's own check

    received = []
    while len(received) < 10:
        received += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
    handles = [{"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(received)]
    eleven = handles + [{"Id": "10", "ReceiptHandle": handles[0]["ReceiptHandle"]}]
    for call in (
        lambda: sqs.change_message_visibility_batch(
            QueueUrl=queue, Entries=[{**entry, "VisibilityTimeout": 60} for entry in eleven]
        ),
        lambda: sqs.delete_message_batch(QueueUrl=queue, Entries=eleven),
    ):
        error = refused(
            call,
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            message="Maximum number of entries per request are 10. You have sent 11.",
        )
        assert isinstance(error, sqs.exceptions.TooManyEntriesInBatchRequest)
    assert (
        sqs.change_message_visibility_batch(
            QueueUrl=queue, Entries=[{**entry, "VisibilityTimeout": 60} for entry in handles]
        )["Failed"]
        == []
    )
    assert sqs.delete_message_batch(QueueUrl=queue, Entries=handles)["Failed"] == []


def test_sqs_visibility_timeout_is_at_most_12_hours(sqs, queue):  # moto's own checks
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(n), "MessageBody": "m"} for n in range(2)])
    first, second = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=2)["Messages"]
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=43_000)
    refused(
        lambda: sqs.change_message_visibility(
            QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=43_201
        ),
        "InvalidParameterValue",
    )
    # The batch reports it per entry, as AWS does.
    answer = sqs.change_message_visibility_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "ok", "ReceiptHandle": first["ReceiptHandle"], "VisibilityTimeout": 43_000},
            {"Id": "long", "ReceiptHandle": second["ReceiptHandle"], "VisibilityTimeout": 43_201},
        ],
    )
    assert [entry["Id"] for entry in answer["Successful"]] == ["ok"]
    assert [(entry["Id"], entry["Code"]) for entry in answer["Failed"]] == [("long", "InvalidParameterValue")]


# --------------------------------------------------------------------------- DynamoDB


@pytest.fixture
def dynamodb(aws):
    client = boto3.client("dynamodb")
    client.create_table(
        TableName="limits",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
    )
    return client


def sized_item(key: str, size: int, *, extra: dict | None = None) -> dict:
    """An item of exactly ``size`` bytes: keys pk/sk, a list attribute, and a string to make up the rest."""
    item = {"pk": {"S": key}, "sk": {"S": "s"}, "l": {"L": [{"N": "12"}, {"BOOL": True}]}, **(extra or {})}
    item["v"] = {"S": ""}
    item["v"]["S"] = "x" * (size - item_size(item))
    assert item_size(item) == size
    return item


def get(dynamodb, key: str) -> dict | None:
    return dynamodb.get_item(TableName="limits", Key={"pk": {"S": key}, "sk": {"S": "s"}}).get("Item")


def test_dynamodb_put_item_takes_400_kb_and_refuses_a_byte_more(dynamodb):
    dynamodb.put_item(TableName="limits", Item=sized_item("fits", DYNAMODB_MAX_ITEM_BYTES))
    assert item_size(get(dynamodb, "fits")) == DYNAMODB_MAX_ITEM_BYTES == 409_600

    refused(
        lambda: dynamodb.put_item(TableName="limits", Item=sized_item("over", DYNAMODB_MAX_ITEM_BYTES + 1)),
        "ValidationException",
        message="Item size has exceeded the maximum allowed size",
    )
    assert get(dynamodb, "over") is None


def test_dynamodb_batch_write_item_takes_25_requests_of_items_within_400_kb(dynamodb):
    puts = [{"PutRequest": {"Item": {"pk": {"S": f"k{n}"}, "sk": {"S": "s"}}}} for n in range(25)]
    assert dynamodb.batch_write_item(RequestItems={"limits": puts})["UnprocessedItems"] == {}

    refused(
        lambda: dynamodb.batch_write_item(
            RequestItems={"limits": puts + [{"DeleteRequest": {"Key": {"pk": {"S": "k0"}, "sk": {"S": "s"}}}}]}
        ),
        "ValidationException",
        message="Too many items requested for the BatchWriteItem call",
    )
    refused(
        lambda: dynamodb.batch_write_item(
            RequestItems={
                "limits": [
                    {"PutRequest": {"Item": sized_item("small", 100)}},
                    {"PutRequest": {"Item": sized_item("big", DYNAMODB_MAX_ITEM_BYTES + 1)}},
                ]
            }
        ),
        "ValidationException",
        message="Item size has exceeded the maximum allowed size",
    )
    assert get(dynamodb, "small") is None


def test_dynamodb_update_item_refuses_a_resulting_item_over_400_kb_and_writes_nothing(dynamodb):
    dynamodb.put_item(TableName="limits", Item=sized_item("grow", DYNAMODB_MAX_ITEM_BYTES - 100))
    before = get(dynamodb, "grow")

    refused(
        lambda: dynamodb.update_item(
            TableName="limits",
            Key={"pk": {"S": "grow"}, "sk": {"S": "s"}},
            UpdateExpression="SET a = :small, b = :big",
            ExpressionAttributeValues={":small": {"S": "a"}, ":big": {"S": "b" * 100}},
        ),
        "ValidationException",
        message="Item size to update has exceeded the maximum allowed size",
    )
    assert get(dynamodb, "grow") == before  # not even the first SET

    dynamodb.update_item(
        TableName="limits",
        Key={"pk": {"S": "grow"}, "sk": {"S": "s"}},
        UpdateExpression="SET b = :fits",
        ExpressionAttributeValues={":fits": {"S": "b" * 99}},
    )
    assert item_size(get(dynamodb, "grow")) == DYNAMODB_MAX_ITEM_BYTES

    # A nested value counts too, and an update that would create a too-large item creates nothing.
    refused(
        lambda: dynamodb.update_item(
            TableName="limits",
            Key={"pk": {"S": "grow"}, "sk": {"S": "s"}},
            UpdateExpression="SET l[0] = :n",
            ExpressionAttributeValues={":n": {"N": "123456"}},
        ),
        "ValidationException",
    )
    refused(
        lambda: dynamodb.update_item(
            TableName="limits",
            Key={"pk": {"S": "new"}, "sk": {"S": "s"}},
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"S": "x" * DYNAMODB_MAX_ITEM_BYTES}},
        ),
        "ValidationException",
    )
    assert get(dynamodb, "new") is None


def test_dynamodb_transact_write_items_takes_100_actions_with_items_within_400_kb(dynamodb):
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "limits", "Item": {"pk": {"S": f"t{n}"}, "sk": {"S": "s"}}}} for n in range(100)
        ]
    )
    refused(
        lambda: dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "limits", "Item": {"pk": {"S": f"u{n}"}, "sk": {"S": "s"}}}} for n in range(101)
            ]
        ),
        "ValidationException",
    )  # moto's own check

    refused(
        lambda: dynamodb.transact_write_items(
            TransactItems=[{"Put": {"TableName": "limits", "Item": sized_item("big", DYNAMODB_MAX_ITEM_BYTES + 1)}}]
        ),
        "ValidationException",
        message="Item size has exceeded the maximum allowed size",
    )
    dynamodb.put_item(TableName="limits", Item=sized_item("grow", DYNAMODB_MAX_ITEM_BYTES - 10))
    refused(
        lambda: dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "limits", "Item": {"pk": {"S": "other"}, "sk": {"S": "s"}}}},
                {
                    "Update": {
                        "TableName": "limits",
                        "Key": {"pk": {"S": "grow"}, "sk": {"S": "s"}},
                        "UpdateExpression": "SET b = :b",
                        "ExpressionAttributeValues": {":b": {"S": "b" * 10}},
                    }
                },
            ]
        ),
        "ValidationException",
        message="Item size to update has exceeded the maximum allowed size",
    )
    assert get(dynamodb, "other") is None
    assert item_size(get(dynamodb, "grow")) == DYNAMODB_MAX_ITEM_BYTES - 10


def test_dynamodb_resource_layer_items_are_measured_once_serialised(dynamodb):
    table = boto3.resource("dynamodb").Table("limits")
    fits = {"pk": "fits", "sk": "s", "b": b"\x00" * 1000, "n": 12}  # 2+4 + 2+1 + 1+1000 + 1+2
    fits["v"] = "x" * (DYNAMODB_MAX_ITEM_BYTES - 1013 - 1)
    table.put_item(Item=fits)
    refused(lambda: table.put_item(Item={**fits, "pk": "over", "v": fits["v"] + "x"}), "ValidationException")
    assert get(dynamodb, "fits") is not None and get(dynamodb, "over") is None


def test_dynamodb_batch_get_item_takes_100_keys(dynamodb):  # moto's own check
    keys = [{"pk": {"S": f"k{n}"}, "sk": {"S": "s"}} for n in range(101)]
    dynamodb.batch_get_item(RequestItems={"limits": {"Keys": keys[:100]}})
    refused(lambda: dynamodb.batch_get_item(RequestItems={"limits": {"Keys": keys}}), "ValidationException")


# --------------------------------------------------------------------------- Secrets Manager


def test_secrets_manager_takes_a_secret_string_of_65536_bytes(aws):
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="limits", SecretString="{}")
    secrets.put_secret_value(SecretId="limits", SecretString="a" * SECRET_MAX_BYTES)
    secrets.put_secret_value(SecretId="limits", SecretString="é" * (SECRET_MAX_BYTES // 2))

    refused(
        lambda: secrets.put_secret_value(SecretId="limits", SecretString="a" * (SECRET_MAX_BYTES + 1)),
        "ValidationException",
    )
    refused(
        lambda: secrets.put_secret_value(SecretId="limits", SecretString="é" * (SECRET_MAX_BYTES // 2) + "a"),
        "ValidationException",
    )
    refused(
        lambda: secrets.create_secret(Name="other", SecretString="a" * (SECRET_MAX_BYTES + 1)), "ValidationException"
    )
    assert secrets.get_secret_value(SecretId="limits")["SecretString"] == "é" * (SECRET_MAX_BYTES // 2)


# --------------------------------------------------------------------------- wherever moto runs


@pytest.fixture
def moto_server(monkeypatch):
    """Clients talking to a ThreadedMotoServer in this process, as `make run` and tests/e2e do."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    yield
    server.stop()


def test_the_limits_hold_for_clients_of_a_moto_server(moto_server):
    sns, dynamodb = boto3.client("sns"), boto3.client("dynamodb")
    arn = sns.create_topic(Name="limits-server")["TopicArn"]
    refused(
        lambda: sns.publish_batch(
            TopicArn=arn,
            PublishBatchRequestEntries=[
                {"Id": "a", "Message": "a" * SNS_MAX_MESSAGE_BYTES},
                {"Id": "b", "Message": "b"},
            ],
        ),
        "BatchRequestTooLong",
    )

    dynamodb.create_table(
        TableName="limits-server",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    dynamodb.put_item(TableName="limits-server", Item={"pk": {"S": "k"}, "v": {"S": "x" * 409_000}})
    refused(
        lambda: dynamodb.update_item(
            TableName="limits-server",
            Key={"pk": {"S": "k"}},
            UpdateExpression="SET w = :w",
            ExpressionAttributeValues={":w": {"S": "y" * 1000}},
        ),
        "ValidationException",
        message="Item size to update has exceeded the maximum allowed size",
    )
    assert "w" not in dynamodb.get_item(TableName="limits-server", Key={"pk": {"S": "k"}})["Item"]
    dynamodb.delete_table(TableName="limits-server")


def test_python_processes_a_test_starts_run_under_the_limits_too(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(
        "import boto3, json\n"
        "from moto import mock_aws\n"
        "with mock_aws():\n"
        "    client = boto3.client('dynamodb', region_name='us-east-1')\n"
        "    client.create_table(TableName='t', BillingMode='PAY_PER_REQUEST',\n"
        "        KeySchema=[{'AttributeName': 'pk', 'KeyType': 'HASH'}],\n"
        "        AttributeDefinitions=[{'AttributeName': 'pk', 'AttributeType': 'S'}])\n"
        "    try:\n"
        "        client.batch_write_item(RequestItems={'t': [{'PutRequest': {'Item': {'pk': {'S': str(n)}}}}\n"
        "                                                   for n in range(26)]})\n"
        "        print(json.dumps('accepted'))\n"
        "    except client.exceptions.ClientError as error:\n"
        "        print(json.dumps(error.response['Error']['Code']))\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    assert json.loads(result.stdout) == "ValidationException", result.stderr


@pytest.mark.aws_limits_off
def test_a_test_can_opt_out_and_see_moto_as_it_is(aws):
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    dynamodb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": {"pk": {"S": str(n)}}}} for n in range(26)]})
    assert os.environ.get("AWS_RULES_LIMITS") != "1"
