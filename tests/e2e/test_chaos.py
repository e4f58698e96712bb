"""The invariant checker: a randomized run of several hundred requests with every fault mixed in.

Faults: 5xx, throttling and slow answers from Constant Contact, dropped connections, access
tokens expiring mid-run with rotating refresh tokens, SNS refusing publications, duplicate
deliveries, intake invocations that run out of Lambda time mid-batch, two pollers
running at once, and poller runs that crash half-way. Whatever happens, no request is lost, none is done twice, nothing
malformed reaches the API and no token reaches the logs.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, defaultdict

import pytest

from devkit.simulator import ConstantContactSimulator
from untag.work_lists import WorkLists

SEED = 20261126
REQUESTS = 300


class CrashOnce:
    """When armed, the next call raises: a function run that dies half-way through its writes."""

    def __init__(self):
        self.armed = False
        self.crashes = 0
        self._lock = threading.Lock()

    def wrap(self, method):
        def crashing(*args, **kwargs):
            with self._lock:
                armed, self.armed = self.armed, False
            if armed:
                self.crashes += 1
                raise RuntimeError("injected: the run dies here")
            return method(*args, **kwargs)

        return crashing


def generate(rng: random.Random) -> tuple[list[str], set[str], int]:
    """Request bodies (duplicates included), the valid request ids, and how many invalid messages."""
    bodies, valid_ids = [], set()
    invalid = [
        "{not json",
        json.dumps({"source": {}, "tag_ids": ["t1"]}),
        json.dumps({"source": {"contact_ids": ["a/b"]}, "tag_ids": ["t1"]}),
        json.dumps({"source": {"contact_ids": ["c"]}, "exclude": {"contact_ids": ["x"]}, "tag_ids": ["t1"]}),
        json.dumps({"source": {"list_ids": ["l"]}, "tag_ids": []}),
        json.dumps({"source": {"new_subscriber": False}, "tag_ids": ["t1"]}),
    ]
    invalid_messages = 0
    for n in range(REQUESTS):
        request_id = f"chaos-{n:04d}"
        roll = rng.random()
        tags = rng.choice([["t-a"], ["t-b"], ["t-a", "t-c"]])
        if roll < 0.55:
            request = {"source": {"contact_ids": [f"c{n}"]}, "tag_ids": tags}
        elif roll < 0.65:
            request = {"source": {"contact_ids": [f"c{n}-{k}" for k in range(rng.randint(2, 40))]}, "tag_ids": tags}
        elif roll < 0.70:
            request = {"source": {"contact_ids": [f"c{n}-{k}" for k in range(600)]}, "tag_ids": tags}
        elif roll < 0.76:
            request = {"source": {"list_ids": [f"l{n}"]}, "exclude": {"contact_ids": ["c-x"]}, "tag_ids": tags}
        elif roll < 0.80:
            request = {"source": {"tag_ids": [f"src{n}"]}, "tag_ids": tags}
        elif roll < 0.83:
            request = {"source": {"all_active_contacts": "true", "exclude": ["c-y"]}, "tag_ids": tags}
        elif roll < 0.86:
            request = {"source": {"new_subscriber": True}, "tag_ids": tags}
        else:
            body = (
                rng.choice(invalid)
                if rng.random() < 0.5
                else json.dumps(
                    {"request_id": request_id, "source": {"contact_ids": ["c"], "list_ids": ["l"]}, "tag_ids": ["t"]}
                )
            )
            bodies.append(body)  # without a request_id, each message is its own submission
            invalid_messages += 1
            continue
        request["request_id"] = request_id
        request["metadata"] = {"n": n}
        body = json.dumps(request)
        if rng.random() < 0.1:
            body = json.dumps(
                {"version": "0", "id": f"eb-{n}", "detail-type": "Untag", "source": "crm", "detail": request}
            )
        elif rng.random() < 0.1:
            body = json.dumps({"Type": "Notification", "MessageId": f"sns-{n}", "Message": json.dumps(request)})
        bodies.append(body)
        valid_ids.add(request_id)
        if rng.random() < 0.1:
            bodies.append(body)  # a duplicate delivery
    rng.shuffle(bodies)
    return bodies, valid_ids, invalid_messages


@pytest.fixture
def chaos_simulator():
    with ConstantContactSimulator(rate_limit_per_second=None, reads_to_finish=3, fault_rate=0.08, seed=SEED) as sim:
        sim.slow_response_seconds = 0.5
        yield sim


def test_no_request_is_lost_or_done_twice_whatever_fails(stack, chaos_simulator, monkeypatch, capfd):
    import boto3

    from devkit.pipeline import LocalPipeline
    from untag.services import current_services

    sim = chaos_simulator
    rng = random.Random(SEED)
    crash = CrashOnce()
    monkeypatch.setattr(WorkLists, "settle_activity", crash.wrap(WorkLists.settle_activity))
    poller_errors: list[BaseException] = []

    def poll_once() -> None:
        try:
            pipeline.poll_once()
        except Exception as error:  # noqa: BLE001 - a failed run, as Lambda would record it
            poller_errors.append(error)

    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.secret_id, SecretString=json.dumps(sim.issue_tokens())
    )
    overrides = {
        "CC_API_BASE_URL": sim.base_url,
        "CC_TOKEN_URL": sim.token_url,
        "CC_REQUESTS_PER_SECOND": "500",
        "FIRST_POLL_DELAY_SECONDS": "0",
        "CC_READ_TIMEOUT_SECONDS": "5",
    }
    for name in {**stack.function_environment("IntakeFunction"), **overrides}:
        monkeypatch.setenv(name, "")
    pipeline = LocalPipeline(stack, environment=overrides, batch_size=25)
    bodies, valid_ids, invalid_count = generate(rng)

    # SNS refuses a fifth of the publications (our publisher port; the events must stay due)
    services = current_services()
    real_publish = services.publisher.publish
    monkeypatch.setattr(
        services.publisher, "publish", lambda events: [ok and rng.random() > 0.2 for ok in real_publish(events)]
    )

    pipeline.submit(bodies)
    cycles = 0
    while cycles < 400:
        cycles += 1
        # intake invocations that sometimes have little Lambda time left
        pipeline.intake_timeout = rng.choice([60.0, 60.0, 60.0, 0.05, 0.4])
        pipeline.intake_once()
        if cycles % 7 == 0:
            sim.expire_access_tokens()  # the access token dies mid-run; refresh tokens rotate
        if cycles % 11 == 0:
            sim.fail_next("GET", "/v3/activities", 0, drop=True)
        # two pollers at once (each AWS request atomic, as in AWS); now and then one of them crashes half-way,
        # after some of its writes: the next run must pick its work up
        if cycles % 13 == 1:  # armed until it fires: the next settling write of either poller
            crash.armed = True
        pollers = [threading.Thread(target=poll_once) for _ in range(2)]
        for poller in pollers:
            poller.start()
        for poller in pollers:
            poller.join()
        pipeline.collect_results()
        finished = {event["request_id"] for event in pipeline.results if event["state"] != "rejected"}
        rejected = {event["event_id"] for event in pipeline.results if event["state"] == "rejected"}
        if finished >= valid_ids and len(rejected) >= invalid_count and not pipeline.queue_depth():
            break

    # the crashes happened, and they are the only way a poller run failed
    assert crash.crashes > 0 and [str(error) for error in poller_errors] == ["injected: the run dies here"] * len(
        poller_errors
    ), poller_errors
    events = pipeline.results
    by_request = defaultdict(list)
    for event in events:
        by_request[event["request_id"]].append(event)

    # every valid request ends in exactly one final state, all its events share one event_id and content
    lost = valid_ids - {rid for rid, evs in by_request.items() if any(e["state"] != "rejected" for e in evs)}
    assert not lost, f"{len(lost)} requests never finished: {sorted(lost)[:10]}"
    for request_id in valid_ids:
        finals = [e for e in by_request[request_id] if e["state"] != "rejected"]
        assert len({e["event_id"] for e in finals}) == 1, finals
        assert (
            len({json.dumps({k: v for k, v in e.items() if k != "_attributes"}, sort_keys=True) for e in finals}) == 1
        ), "re-publications must carry the same content"
    # every invalid message rejected: one distinct rejected event each
    assert len({e["event_id"] for e in events if e["state"] == "rejected"}) == invalid_count
    assert all(e["original_body"] and e["errors"] for e in events if e["state"] == "rejected")

    # no duplicate activity set: every contact of a contact_ids request went into exactly one activity
    contacts = Counter(
        contact for activity in sim.activities.values() for contact in activity["body"]["source"].get("contact_ids", ())
    )
    assert contacts and max(contacts.values()) == 1, [c for c, n in contacts.items() if n > 1][:10]
    # the merged single-contact requests share activities (far fewer POSTs than requests)
    assert len(sim.activities) < len(valid_ids)

    assert sim.malformed == []
    assert sim.token_refreshes >= 1 and sim.invalid_grants == 0
    # the faults really happened
    assert sim.count(status=500) + sim.count(status=503) > 0 and sim.count(status=429) > 0
    assert sim.count(status=401) > 0 and pipeline.retried_records > 0
    output = capfd.readouterr()
    logs = output.out + output.err
    leaked = [token for token in sim.issued_secrets if token in logs]
    statuses = Counter(call.status for call in sim.calls)
    print(
        f"\nchaos: {len(bodies)} messages ({len(valid_ids)} valid requests, {invalid_count} invalid), "
        f"{len(events)} events, {cycles} cycles, {len(sim.activities)} activities, "
        f"{sim.count('POST')} POSTs, {sim.count('GET')} GETs, API statuses {dict(sorted(statuses.items()))}, "
        f"{sim.token_refreshes} token refreshes, {pipeline.retried_records} records retried, "
        f"{len(lost)} lost, 0 duplicate contacts, {len(sim.malformed)} malformed, {len(leaked)} tokens in logs",
        file=__import__("sys").__stderr__,
    )
    assert not leaked, "a token reached the logs"
    assert cycles < 400
