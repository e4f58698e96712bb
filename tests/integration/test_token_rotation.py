"""Token lifecycle against the simulator's OAuth endpoint and moto: one refresh at a time, stored first."""

import json
import threading
import time

import boto3
import pytest

from devkit.simulator import ConstantContactSimulator
from untag.constant_contact import AuthenticationError
from untag.controls import Controls
from untag.tokens import SecretsManagerSecret, TokenProvider


@pytest.fixture
def oauth():
    with ConstantContactSimulator(rate_limit_per_second=None, rotating_refresh_tokens=True) as sim:
        yield sim


_MOTO = threading.Lock()


class Atomic:
    """A boto3 client whose calls run one at a time. In-process moto does not make a conditional write
    atomic against other threads, as DynamoDB does; this restores that guarantee for the threaded tests."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            with _MOTO:
                return method(*args, **kwargs)

        return call


def provider(stack, oauth) -> TokenProvider:
    """One Lambda instance's token provider (its own memory, the shared secret and lock)."""
    dynamodb, secretsmanager = Atomic(boto3.client("dynamodb")), Atomic(boto3.client("secretsmanager"))
    store = Controls(lambda: dynamodb, stack.table_name)
    secret = SecretsManagerSecret(lambda: secretsmanager, stack.secret_id)
    return TokenProvider(secret, oauth.token_url, store)


def put_secret(stack, value):
    boto3.client("secretsmanager").put_secret_value(SecretId=stack.secret_id, SecretString=json.dumps(value))


def read_secret(stack):
    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=stack.secret_id)["SecretString"])


def test_instances_that_hit_401_together_refresh_once_and_share_the_new_tokens(stack, oauth):
    # Given a secret whose access token Constant Contact no longer accepts, and four instances using it
    tokens = oauth.issue_tokens()
    put_secret(stack, tokens)
    instances = [provider(stack, oauth) for _ in range(4)]
    assert all(instance.access_token() == tokens["access_token"] for instance in instances)
    oauth.expire_access_tokens()
    # When they all get a 401 at the same moment
    results = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(i.after_unauthorized(tokens["access_token"])))
        for i in instances
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one refresh ran, nobody used a voided refresh token, and all use the stored new token
    assert oauth.token_refreshes == 1 and oauth.invalid_grants == 0
    stored = read_secret(stack)
    assert set(results) == {stored["access_token"]} and stored["access_token"] != tokens["access_token"]
    assert stored["refresh_token"] != tokens["refresh_token"]
    assert stored["client_id"] == tokens["client_id"] and stored["expires_at"] > time.time()


def test_an_expired_access_token_is_refreshed_before_it_is_used(stack, oauth):
    tokens = {**oauth.issue_tokens(), "expires_at": int(time.time()) - 10}
    put_secret(stack, tokens)
    token = provider(stack, oauth).access_token()
    assert token != tokens["access_token"] and oauth.token_refreshes == 1


def test_a_refused_refresh_token_stops_with_a_clear_error_and_no_retry_storm(stack, oauth):
    # Given a refresh token that was already used (rotating tokens void it)
    tokens = oauth.issue_tokens()
    put_secret(stack, tokens)
    first = provider(stack, oauth)
    first.after_unauthorized(tokens["access_token"])
    put_secret(stack, tokens)  # an operator restores the old, voided tokens
    oauth.reset_counters()
    # When an instance must refresh
    with pytest.raises(AuthenticationError) as raised:
        provider(stack, oauth).after_unauthorized(tokens["access_token"])
    # Then one token call, a message that says what to do, and no token in it
    assert oauth.invalid_grants == 1 and oauth.count(path_prefix="/oauth2") == 1
    assert "re-authorise" in str(raised.value)
    assert not any(secret in str(raised.value) for secret in oauth.issued_secrets)


def test_a_secret_without_refresh_credentials_says_so(stack, oauth):
    put_secret(stack, {"access_token": "only-this"})
    with pytest.raises(AuthenticationError, match="refresh_token"):
        provider(stack, oauth).after_unauthorized("only-this")
    assert oauth.count() == 0


def test_short_lived_tokens_are_refreshed_once_per_lifetime_not_on_every_call(stack):
    # Given an app whose access tokens live 30 s (the margin must not make every call refresh)
    with ConstantContactSimulator(rate_limit_per_second=None, access_token_ttl=30) as oauth:
        tokens = {**oauth.issue_tokens(), "expires_at": int(time.time()) - 1}
        put_secret(stack, tokens)
        instance = provider(stack, oauth)
        # When the token is used many times within its lifetime
        first = instance.access_token()
        assert all(instance.access_token() == first for _ in range(20))
        # Then it was refreshed once, and the secret knows the lifetime for other instances
        assert oauth.token_refreshes == 1 and read_secret(stack)["expires_in"] == 30


class FlakySecret(SecretsManagerSecret):
    """The real secret, whose first writes fail (throttling, a network blip)."""

    def __init__(self, *args, failures: int):
        super().__init__(*args)
        self.failures = failures

    def write(self, value):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("secrets manager unreachable")
        super().write(value)


def test_refreshed_tokens_reach_the_secret_even_if_the_first_writes_fail(stack, oauth):
    tokens = oauth.issue_tokens()
    put_secret(stack, tokens)
    secret = FlakySecret(lambda: boto3.client("secretsmanager"), stack.secret_id, failures=2)
    instance = TokenProvider(
        secret, oauth.token_url, Controls(lambda: boto3.client("dynamodb"), stack.table_name), sleep=lambda _: None
    )
    token = instance.after_unauthorized(tokens["access_token"])
    # Then the rotated refresh token was stored (another instance can refresh with it) and is valid
    stored = read_secret(stack)
    assert stored["access_token"] == token and stored["refresh_token"] != tokens["refresh_token"]
    assert provider(stack, oauth).after_unauthorized(token) and oauth.invalid_grants == 0


class VirtualClock:
    """Time that moves only when told to (a slow token endpoint without waiting for it)."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_second_instance_never_spends_the_refresh_token_while_a_slow_refresh_is_in_flight(stack, oauth):
    # Given two instances sharing the tokens and the lock on one clock, and a token endpoint that takes 31 s
    tokens = oauth.issue_tokens()
    put_secret(stack, tokens)
    clock = VirtualClock()
    start = clock.now
    dynamodb, secretsmanager = Atomic(boto3.client("dynamodb")), Atomic(boto3.client("secretsmanager"))
    store = Controls(lambda: dynamodb, stack.table_name, clock=clock)
    secret = SecretsManagerSecret(lambda: secretsmanager, stack.secret_id)
    first = TokenProvider(secret, oauth.token_url, store, clock=clock, sleep=clock.sleep)
    oauth.token_gate = threading.Event()
    refreshed = []
    thread = threading.Thread(target=lambda: refreshed.append(first.after_unauthorized(tokens["access_token"])))

    def second_waits(seconds: float) -> None:
        """The second instance's waiting moves the clock; the first's answer arrives 31 s after it asked."""
        clock.sleep(seconds)
        if clock.now >= start + 31 + 1 and not oauth.token_gate.is_set():
            oauth.token_gate.set()
            thread.join(10)

    second = TokenProvider(secret, oauth.token_url, store, clock=clock, sleep=second_waits)

    # When the first starts a refresh and, 31 s later (an old 30 s lock's lease gone), the second gets a 401
    thread.start()
    deadline = time.monotonic() + 10
    while not _lock_held(dynamodb, stack) and time.monotonic() < deadline:
        time.sleep(0.01)
    clock.now += 31
    token = second.after_unauthorized(tokens["access_token"])

    # Then only the first spent the refresh token; the second waited and took the stored new token
    assert oauth.token_refreshes == 1 and oauth.invalid_grants == 0
    assert refreshed == [token] == [read_secret(stack)["access_token"]]


def _lock_held(dynamodb, stack) -> bool:
    item = dynamodb.get_item(
        TableName=stack.table_name, Key={"pk": {"S": "CONTROL#lock#token-refresh"}, "sk": {"S": "CONTROL"}}
    ).get("Item", {})
    return "holder" in item


def test_the_refresh_lock_outlasts_the_longest_refresh():
    from untag.tokens import lock_lease_seconds, longest_refresh_seconds

    assert longest_refresh_seconds() > 31  # the slow endpoint above is not the worst case
    assert lock_lease_seconds() > longest_refresh_seconds()
    assert lock_lease_seconds((3.05, 10.0)) > longest_refresh_seconds((3.05, 10.0))


def test_a_refresh_never_starts_with_too_little_lambda_time_left(stack, oauth):
    from untag.constant_contact import TransientApiError

    tokens = oauth.issue_tokens()
    put_secret(stack, tokens)
    instance = provider(stack, oauth)
    instance.time_left = lambda: 20.0  # less than the longest refresh
    with pytest.raises(TransientApiError, match="too little Lambda time"):
        instance.after_unauthorized(tokens["access_token"])
    assert oauth.token_refreshes == 0
