"""The resources built locally, one handler per type: SQS queues, DynamoDB tables, SNS topics, Secrets Manager secrets.

Each takes the template's resolved Properties, fits them to the boto3 call (CloudFormation-only keys
dropped, scalars coerced) and returns the resource's ``!Ref`` value and ``!GetAtt`` attributes. A
resource an earlier run created is reused (a queue's attributes brought up to date, a secret's value kept).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

from devkit.stack.intrinsics import as_text

LOGGER = logging.getLogger(__name__)

PLACEHOLDER_SECRET = {"access_token": "placeholder"}


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
        return as_text(value)
    return value


def _operation_input(client: Any, operation: str) -> Any:
    return client.meta.service_model.operation_model(operation).input_shape


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class Provisioner:
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
        attributes = {key: as_text(value) for key, value in properties.items() if key not in ("QueueName", "Tags")}
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
        attributes = {key: as_text(value) for key, value in properties.items() if key not in not_attributes}
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
