"""Section 7 of `make bench`: Constant Contact calls per 1,000 e-mail addresses resolved, cold and warm directory.

The intake handler (moto, the simulator over HTTP) receives requests of 1,000 addresses each from
an account of ``ACCOUNT_CONTACTS`` contacts; the simulator counts the GET /v3/contacts calls the
resolution makes (the directory sync, per-address lookups), apart from the activity POSTs.
"""

from __future__ import annotations

import json
import os
import time

from bench import Row

ACCOUNT_CONTACTS = 20_000
EMAILS = 1_000
WARM_TARGET = 3  # calls per 1,000 addresses once the directory is warm


def measure() -> dict:
    from moto import mock_aws

    from devkit.pipeline import LambdaContext, load_handler
    from devkit.simulator import ConstantContactSimulator
    from devkit.stack import provision

    past = [3600.0]  # the account's contacts were added an hour ago, as in a real account (not in the last minute)
    simulator = ConstantContactSimulator(
        rate_limit_per_second=None, daily_quota=None, reads_to_finish=1, clock=lambda: time.time() - past[0]
    )
    with mock_aws(), simulator as sim:
        import boto3

        stack = provision()
        boto3.client("secretsmanager").put_secret_value(
            SecretId=stack.secret_id, SecretString=json.dumps(sim.issue_tokens())
        )
        os.environ.update(stack.function_environment("IntakeFunction"))
        os.environ.update(
            {
                "CC_API_BASE_URL": sim.base_url,
                "CC_TOKEN_URL": sim.token_url,
                "CC_REQUESTS_PER_SECOND": "1000",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
        )
        intake = load_handler(stack, "IntakeFunction")
        account = [email for email, _ in sim.seed_contacts(ACCOUNT_CONTACTS)]
        past[0] = 0.0

        def resolve(name: str, emails: list[str]) -> dict:
            """Send one request of these addresses; the contacts calls it made, and what it resolved."""
            sim.reset_counters()
            body = json.dumps({"request_id": name, "source": {"emails": emails}, "tag_ids": ["t-bench"]})
            record = {"messageId": name, "body": body, "attributes": {}, "messageAttributes": {}}
            answer = intake({"Records": [record]}, LambdaContext("intake", 900))
            assert not answer["batchItemFailures"], answer
            calls = sim.count("GET", "/v3/contacts")
            item = boto3.client("dynamodb").get_item(
                TableName=stack.table_name, Key={"pk": {"S": f"REQUEST#{name}"}, "sk": {"S": "REQUEST"}}
            )["Item"]
            return {"calls": calls, "per_1000": round(calls * 1000 / len(emails), 2), "status": item["status"]["S"]}

        cold = resolve("cold", account[:EMAILS])
        warm = resolve("warm", account[EMAILS : 2 * EMAILS])
        misses = resolve("warm-with-misses", account[-900:] + [f"nobody-{n}@example.org" for n in range(100)])
        return {
            "emails_resolution": {
                "account_contacts": ACCOUNT_CONTACTS,
                "emails_per_request": EMAILS,
                "cold_directory": cold,
                "warm_directory": warm,
                "warm_directory_100_unknown": misses,
                "warm_target_per_1000": WARM_TARGET,
            }
        }


def rows(results: dict) -> list[Row]:
    figures = results["emails_resolution"]
    cold, warm, misses = (figures[key] for key in ("cold_directory", "warm_directory", "warm_directory_100_unknown"))
    account = f"{figures['account_contacts']:,}"
    return [
        Row(7, f"CC calls / 1,000 emails, cold ({account} contacts)", cold["per_1000"], "", EMAILS),
        Row(7, "CC calls / 1,000 emails, warm directory", warm["per_1000"], f"<= {WARM_TARGET}", EMAILS),
        Row(7, "CC calls / 1,000 emails, warm, 100 unknown", misses["per_1000"], f"<= {WARM_TARGET}", EMAILS),
    ]


def notes(results: dict) -> str:
    return (
        "E-mail addresses (bench/resolution.py): requests of 1,000 addresses from an account of "
        f"{results['emails_resolution']['account_contacts']:,} contacts; a cold directory costs one page per 500 "
        "contacts once, then known addresses cost nothing and unknown ones one incremental sync call per run."
    )
