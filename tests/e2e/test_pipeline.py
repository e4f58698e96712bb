"""End-to-end: untag requests sent to the intake queue, result events received from the topic, as a subscriber does.

Everything runs through the ``pipeline`` fixture: the intake queue and its event source mapping,
the scheduled poller, and a queue subscribed to the result topic (moto, built from template.yaml),
with Constant Contact played by the simulator over real HTTP. The simulator's account: a list
holds 10 contacts, a tag 10, all active contacts are 1,000, new subscribers 100; an activity
finishes on its second read, in the state ``set_outcome`` gave one of its tags (else completed).
The ``simulator`` fixture also checks that nothing malformed ever reached it.
"""

from __future__ import annotations

import json
import re
import uuid
from itertools import product
from typing import Any

from devkit.pipeline import eventbridge_event as eventbridge_envelope

REMOVE_TAGS = "/v3/activities/contacts_taggings_remove"
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
STATES = ("completed", "failed", "cancelled", "timed_out", "rejected")
EVENT_FIELDS = {
    "schema_version",
    "event_id",
    "event_type",
    "request_id",
    "state",
    "tag_ids",
    "source_type",
    "activities",
    "errors",
    "metadata",
    "received_at",
    "finished_at",
}
ACTIVITY_FIELDS = {
    "activity_id",
    "state",
    "percent_done",
    "items_total_count",
    "items_completed_count",
    "errors",
    "created_at",
    "completed_at",
}


# --- driving the pipeline ------------------------------------------------------------------------


def send(pipeline, body: Any) -> str:
    """Send one message to the intake queue as a producer does; returns the SQS messageId."""
    text = body if isinstance(body, str) else json.dumps(body)
    return pipeline.sqs.send_message(QueueUrl=pipeline.stack.queue_url, MessageBody=text)["MessageId"]


def settle(pipeline, requests: int, **options) -> dict[str, dict]:
    """Run the pipeline until ``requests`` requests have their result event; check every event's shape.

    Returns the events by request_id (a request whose event was delivered more than once must have
    received the very same event each time).
    """
    assert pipeline.run_until_settled(requests, timeout=30, **options), (
        f"only {len({e['request_id'] for e in pipeline.results})} of {requests} requests settled"
    )
    events: dict[str, dict] = {}
    for event in pipeline.results:
        assert_contract_shape(event)
        assert events.setdefault(event["request_id"], event) == event, "a re-publication differs from the first"
    assert len({event["event_id"] for event in events.values()}) == len(events), "event_ids must be distinct"
    return events


def assert_contract_shape(event: dict) -> None:
    """What contracts.md section 2 promises of every result event, whatever its outcome."""
    state = event["state"]
    assert state in STATES
    assert set(event) == EVENT_FIELDS | {"_attributes"} | ({"original_body"} if state == "rejected" else set())
    assert event["schema_version"] == "1"
    assert event["event_type"] == f"untag.{state}"
    assert {name: event["_attributes"].get(name) for name in ("event_type", "state")} == {
        "event_type": event["event_type"],
        "state": state,
    }
    assert isinstance(event["event_id"], str) and event["event_id"]
    assert ISO_UTC.fullmatch(event["received_at"]) and ISO_UTC.fullmatch(event["finished_at"]), event
    assert event["received_at"] <= event["finished_at"]
    assert isinstance(event["errors"], list) and all(isinstance(error, str) for error in event["errors"])
    if state == "rejected":
        assert event["activities"] == [] and event["errors"] and isinstance(event["original_body"], str)
        return
    if state == "completed":
        assert event["activities"], "a completed request lists the activities that carried it"
    for activity in event["activities"]:
        assert set(activity) == ACTIVITY_FIELDS
        assert activity["state"] in ("completed", "failed", "cancelled", "timed_out")
        assert ISO_UTC.fullmatch(activity["created_at"]) and ISO_UTC.fullmatch(activity["completed_at"]), activity
    if state != "completed":
        assert event["errors"], "a request that did not complete says why"


# --- what Constant Contact saw ------------------------------------------------------------------


def created_bodies(simulator) -> list[dict]:
    """The activity bodies Constant Contact accepted, in a comparable order."""
    return sorted(
        (call.body for call in simulator.calls if call.path == REMOVE_TAGS and call.status == 201), key=json.dumps
    )


def activities_removing(simulator, tag_id: str) -> list[str]:
    """Ids of the activities whose body removes ``tag_id``."""
    return sorted(aid for aid, activity in simulator.activities.items() if tag_id in activity["body"]["tag_ids"])


def as_reported(simulator, activity_id: str) -> dict:
    """The activity entry a result event must carry: what Constant Contact says of the activity."""
    activity = simulator.activities[activity_id]
    return {
        "activity_id": activity_id,
        "state": activity["state"],
        "percent_done": activity["percent_done"],
        "items_total_count": activity["status"].get("items_total_count"),
        "items_completed_count": activity["status"].get("items_completed_count"),
        "errors": activity["activity_errors"],
        "created_at": activity["created_at"],
        "completed_at": activity["completed_at"],
    }


def expected_event(
    event: dict,
    *,
    state: str,
    tag_ids: list[str],
    source_type: str,
    activities: list[dict],
    metadata: dict | None = None,
    errors: list[str] | None = None,
) -> dict:
    """The whole event expected, taking from ``event`` only its id and timestamps (checked by their form)."""
    return {
        "schema_version": "1",
        "event_id": event["event_id"],
        "event_type": f"untag.{state}",
        "request_id": event["request_id"],
        "state": state,
        "tag_ids": tag_ids,
        "source_type": source_type,
        "activities": sorted(activities, key=lambda activity: activity["activity_id"]),
        "errors": [] if errors is None else errors,
        "metadata": metadata,
        "received_at": event["received_at"],
        "finished_at": event["finished_at"],
        "_attributes": {"event_type": f"untag.{state}", "state": state},
    }


def sorted_activities(event: dict) -> dict:
    return {**event, "activities": sorted(event["activities"], key=lambda activity: activity["activity_id"])}


# --- every source type -------------------------------------------------------------------------

SOURCE_TYPES = {  # request -> (source_type, contacts the simulator's activity touches)
    "by-contacts": (
        {"source": {"contact_ids": ["c-1", "c-2"]}, "tag_ids": ["t-contacts"], "metadata": {"origin": "crm"}},
        "contact_ids",
        2,
    ),
    "by-lists": (
        {"source": {"list_ids": ["l-1", "l-2"]}, "exclude": {"contact_ids": ["c-9"]}, "tag_ids": ["t-lists"]},
        "list_ids",
        19,
    ),
    "by-tags": ({"source": {"tag_ids": ["t-vip", "t-gold"]}, "tag_ids": ["t-tags"]}, "tag_ids", 20),
    "everyone-active": (
        {
            "source": {"all_active_contacts": True},
            "exclude": {"contact_ids": ["c-keep-1", "c-keep-2"]},
            "tag_ids": ["t-active", "t-trial"],
        },
        "all_active_contacts",
        998,
    ),
    "new-subscribers": ({"source": {"new_subscriber": True}, "tag_ids": ["t-new"]}, "new_subscriber", 100),
}


def test_every_source_type_ends_in_exactly_the_completed_event_the_contract_describes(pipeline, simulator):
    # Given one request of each source type (list and all-contacts sources with an exclude)
    pipeline.submit(
        [json.dumps({"request_id": request_id, **request}) for request_id, (request, _, _) in SOURCE_TYPES.items()]
    )

    # When the pipeline has run until each has its result event
    events = settle(pipeline, len(SOURCE_TYPES))

    # Then Constant Contact received one activity per request, in exactly the canonical form
    sent_to_constant_contact = [
        {key: value for key, value in request.items() if key != "metadata"} for request, _, _ in SOURCE_TYPES.values()
    ]
    assert created_bodies(simulator) == sorted(sent_to_constant_contact, key=json.dumps)
    # And each request got exactly one completed event, listing its activity with Constant Contact's counts
    assert sorted(events) == sorted(SOURCE_TYPES)
    for request_id, (request, source_type, contacts) in SOURCE_TYPES.items():
        [activity_id] = activities_removing(simulator, request["tag_ids"][0])
        activity = as_reported(simulator, activity_id)
        assert (activity["items_total_count"], activity["items_completed_count"], activity["percent_done"]) == (
            contacts,
            contacts,
            100,
        )
        assert sorted_activities(events[request_id]) == expected_event(
            events[request_id],
            state="completed",
            tag_ids=request["tag_ids"],
            source_type=source_type,
            activities=[activity],
            metadata=request.get("metadata"),
        )
    assert len(pipeline.results) == len(SOURCE_TYPES)


def test_a_request_larger_than_one_activity_is_split_and_reported_as_one(pipeline, simulator):
    # Given a request for 1,200 contacts and 60 tags (Constant Contact takes 500 contacts and 50 tags at most)
    contacts = [f"c-{number:04d}" for number in range(1, 1201)]
    tags = [f"t-{number:02d}" for number in range(60)]
    pipeline.submit([json.dumps({"request_id": "bulk-1200x60", "source": {"contact_ids": contacts}, "tag_ids": tags})])

    # When the pipeline has run
    events = settle(pipeline, 1)

    # Then six activities were created, each within the caps, together covering every (contact, tag) once
    bodies = created_bodies(simulator)
    assert len(bodies) == 6 == simulator.count("POST", REMOVE_TAGS)
    assert all(len(body["source"]["contact_ids"]) <= 500 and len(body["tag_ids"]) <= 50 for body in bodies)
    pairs = [pair for body in bodies for pair in product(body["source"]["contact_ids"], body["tag_ids"])]
    assert len(pairs) == len(set(pairs)) and set(pairs) == set(product(contacts, tags))
    # And one event reports the request as a whole, listing all six activities
    event = events["bulk-1200x60"]
    activities = [as_reported(simulator, activity_id) for activity_id in simulator.activities]
    assert sorted(activity["items_total_count"] for activity in activities) == [200, 200, 500, 500, 500, 500]
    assert sorted_activities(event) == expected_event(
        event, state="completed", tag_ids=tags, source_type="contact_ids", activities=activities
    )
    assert len(pipeline.results) == 1


def test_small_requests_removing_the_same_tags_share_an_activity_and_each_lists_it(pipeline, simulator):
    # Given three small requests that remove the same tag from different contacts
    pipeline.submit(
        [
            json.dumps({"request_id": f"small-{n}", "source": {"contact_ids": contacts}, "tag_ids": ["t-1"]})
            for n, contacts in enumerate((["c-1", "c-2"], ["c-3"], ["c-2", "c-4"]))
        ]
    )

    # When the pipeline has run
    events = settle(pipeline, 3)

    # Then one activity carried them all (each contact once)
    assert created_bodies(simulator) == [{"source": {"contact_ids": ["c-1", "c-2", "c-3", "c-4"]}, "tag_ids": ["t-1"]}]
    # And each request's event lists that activity, with the counts of the activity as a whole
    [activity_id] = simulator.activities
    for request_id in ("small-0", "small-1", "small-2"):
        assert sorted_activities(events[request_id]) == expected_event(
            events[request_id],
            state="completed",
            tag_ids=["t-1"],
            source_type="contact_ids",
            activities=[as_reported(simulator, activity_id)],
        )
    assert events["small-1"]["activities"][0]["items_total_count"] == 4


# --- what the service tolerates and unwraps ---------------------------------------------------------


def test_tolerated_variants_reach_constant_contact_in_canonical_form(pipeline, simulator):
    # Given requests in the forms Constant Contact's own guide uses: "true" strings, exclude inside source
    pipeline.submit(
        [
            json.dumps(body)
            for body in (
                {"request_id": "variant-active", "source": {"all_active_contacts": "true"}, "tag_ids": ["t-a"]},
                {"request_id": "variant-new", "source": {"new_subscriber": "true"}, "tag_ids": ["t-b"]},
                {
                    "request_id": "variant-lists",
                    "source": {"list_ids": ["l-1"], "exclude": ["c-9"]},
                    "tag_ids": ["t-c"],
                },
                {
                    "request_id": "variant-both",
                    "source": {"all_active_contacts": "true", "exclude": ["c-8", "c-9"]},
                    "tag_ids": ["t-d"],
                },
            )
        ]
    )

    # When the pipeline has run
    events = settle(pipeline, 4)

    # Then Constant Contact saw only the canonical form: booleans, and exclude at the top level
    assert created_bodies(simulator) == sorted(
        [
            {"source": {"all_active_contacts": True}, "tag_ids": ["t-a"]},
            {"source": {"new_subscriber": True}, "tag_ids": ["t-b"]},
            {"source": {"list_ids": ["l-1"]}, "exclude": {"contact_ids": ["c-9"]}, "tag_ids": ["t-c"]},
            {"source": {"all_active_contacts": True}, "exclude": {"contact_ids": ["c-8", "c-9"]}, "tag_ids": ["t-d"]},
        ],
        key=json.dumps,
    )
    # And each request completed under its canonical source type
    assert {request_id: (event["state"], event["source_type"]) for request_id, event in events.items()} == {
        "variant-active": ("completed", "all_active_contacts"),
        "variant-new": ("completed", "new_subscriber"),
        "variant-lists": ("completed", "list_ids"),
        "variant-both": ("completed", "all_active_contacts"),
    }


def eventbridge_event(detail: dict | str) -> dict:
    """An EventBridge event as a rule delivers it to an SQS target."""
    return eventbridge_envelope("Untag Requested", "crm.example", detail, region="us-east-1")


def sns_notification(message: dict | str) -> dict:
    """An SNS notification as an SNS -> SQS subscription without raw delivery delivers it."""
    topic = "arn:aws:sns:us-east-1:123456789012:crm-untag-requests"
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2026-11-26T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "c2lnbmF0dXJl",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}:1",
    }


def test_eventbridge_and_sns_envelopes_are_unwrapped(pipeline, simulator):
    # Given a request inside an EventBridge event and another inside an SNS notification
    pipeline.submit(
        [
            json.dumps(
                eventbridge_event(
                    {
                        "request_id": "via-eventbridge",
                        "source": {"contact_ids": ["c-1"]},
                        "tag_ids": ["t-eb"],
                        "metadata": {"via": "eventbridge"},
                    }
                )
            ),
            json.dumps(
                sns_notification(
                    {
                        "request_id": "via-sns",
                        "source": {"list_ids": ["l-1"]},
                        "exclude": {"contact_ids": ["c-9"]},
                        "tag_ids": ["t-sns"],
                        "metadata": {"via": "sns"},
                    }
                )
            ),
        ]
    )

    # When the pipeline has run
    events = settle(pipeline, 2)

    # Then Constant Contact received the requests themselves, and each completed under its own request_id
    assert created_bodies(simulator) == [
        {"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-eb"]},
        {"source": {"list_ids": ["l-1"]}, "exclude": {"contact_ids": ["c-9"]}, "tag_ids": ["t-sns"]},
    ]
    for request_id, tag_id, source_type, via in (
        ("via-eventbridge", "t-eb", "contact_ids", "eventbridge"),
        ("via-sns", "t-sns", "list_ids", "sns"),
    ):
        [activity_id] = activities_removing(simulator, tag_id)
        assert sorted_activities(events[request_id]) == expected_event(
            events[request_id],
            state="completed",
            tag_ids=[tag_id],
            source_type=source_type,
            activities=[as_reported(simulator, activity_id)],
            metadata={"via": via},
        )


def test_a_request_without_request_id_is_known_by_its_envelope_id_or_its_sqs_message_id(pipeline, simulator):
    # Given three requests without request_id: bare, in an EventBridge event, in an SNS notification
    bridged = eventbridge_event({"source": {"contact_ids": ["c-2"]}, "tag_ids": ["t-eb"]})
    notified = sns_notification({"source": {"contact_ids": ["c-3"]}, "tag_ids": ["t-sns"]})
    bare_message_id = send(pipeline, {"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-bare"]})
    send(pipeline, bridged)
    send(pipeline, notified)

    # When the pipeline has run
    events = settle(pipeline, 3)

    # Then each is reported under the id its carrier gave it
    assert {event["tag_ids"][0]: request_id for request_id, event in events.items()} == {
        "t-bare": bare_message_id,
        "t-eb": bridged["id"],
        "t-sns": notified["MessageId"],
    }
    assert all(event["state"] == "completed" for event in events.values())
    assert simulator.count("POST", REMOVE_TAGS, 201) == 3


# --- invalid requests ----------------------------------------------------------------------------------

FROM_MESSAGE, FROM_ENVELOPE = "the SQS messageId", "the envelope's id"
INVALID = [  # (kind, body, request_id expected, (tag_ids, source_type, metadata) readable from the body)
    ("not JSON", "remove tag t-1 from c-1 please", FROM_MESSAGE, (None, None, None)),
    ("JSON but not an object", '["c-1", "t-1"]', FROM_MESSAGE, (None, None, None)),
    (
        "source missing",
        {"request_id": "bad-no-source", "tag_ids": ["t-1"], "metadata": {"origin": "crm"}},
        "bad-no-source",
        (["t-1"], None, {"origin": "crm"}),
    ),
    (
        "two sources",
        {"request_id": "bad-two-sources", "source": {"contact_ids": ["c-1"], "list_ids": ["l-1"]}, "tag_ids": ["t-1"]},
        "bad-two-sources",
        (["t-1"], None, None),
    ),
    (
        "unknown source",
        {"request_id": "bad-unknown-source", "source": {"segment_ids": ["s-1"]}, "tag_ids": ["t-1"]},
        "bad-unknown-source",
        (["t-1"], None, None),
    ),
    (
        "tag_ids empty",
        {"request_id": "bad-empty-tags", "source": {"contact_ids": ["c-1"]}, "tag_ids": []},
        "bad-empty-tags",
        (None, "contact_ids", None),
    ),
    (
        "tag_ids missing",
        {"request_id": "bad-no-tags", "source": {"list_ids": ["l-1"]}},
        "bad-no-tags",
        (None, "list_ids", None),
    ),
    (
        "id that could alter a URL path",
        {"request_id": "bad-path-id", "source": {"contact_ids": ["c-1", "../c-2"]}, "tag_ids": ["t-1"]},
        "bad-path-id",
        (["t-1"], "contact_ids", None),
    ),
    (
        "id longer than 64",
        {"request_id": "bad-long-id", "source": {"contact_ids": ["c" * 65]}, "tag_ids": ["t-1"]},
        "bad-long-id",
        (["t-1"], "contact_ids", None),
    ),
    (
        "id not a string",
        {"request_id": "bad-number-id", "source": {"contact_ids": ["c-1"]}, "tag_ids": [42]},
        "bad-number-id",
        (None, "contact_ids", None),
    ),
    (
        "exclude with contact_ids",
        {
            "request_id": "bad-exclude-contacts",
            "source": {"contact_ids": ["c-1", "c-2"]},
            "exclude": {"contact_ids": ["c-2"]},
            "tag_ids": ["t-1"],
        },
        "bad-exclude-contacts",
        (["t-1"], "contact_ids", None),
    ),
    (
        "exclude with tag_ids",
        {
            "request_id": "bad-exclude-tags",
            "source": {"tag_ids": ["t-2"]},
            "exclude": {"contact_ids": ["c-2"]},
            "tag_ids": ["t-1"],
        },
        "bad-exclude-tags",
        (["t-1"], "tag_ids", None),
    ),
    (
        "exclude both at top level and inside source",
        {
            "request_id": "bad-exclude-twice",
            "source": {"list_ids": ["l-1"], "exclude": ["c-1"]},
            "exclude": {"contact_ids": ["c-2"]},
            "tag_ids": ["t-1"],
        },
        "bad-exclude-twice",
        (["t-1"], "list_ids", None),
    ),
    (
        "new_subscriber false",
        {"request_id": "bad-new-false", "source": {"new_subscriber": False}, "tag_ids": ["t-1"]},
        "bad-new-false",
        (["t-1"], "new_subscriber", None),
    ),
    (
        'all_active_contacts neither true nor "true"',
        {"request_id": "bad-active-yes", "source": {"all_active_contacts": "yes"}, "tag_ids": ["t-1"]},
        "bad-active-yes",
        (["t-1"], "all_active_contacts", None),
    ),
    (
        "metadata not an object",
        {
            "request_id": "bad-metadata-list",
            "source": {"list_ids": ["l-1"]},
            "tag_ids": ["t-1"],
            "metadata": ["origin", "crm"],
        },
        "bad-metadata-list",
        (["t-1"], "list_ids", None),
    ),
    (
        "metadata over 4 KB",
        {
            "request_id": "bad-metadata-size",
            "source": {"list_ids": ["l-1"]},
            "tag_ids": ["t-1"],
            "metadata": {"blob": "x" * 4100},
        },
        "bad-metadata-size",
        (["t-1"], "list_ids", None),
    ),
    (
        "request_id longer than 128",
        {"request_id": "r" * 129, "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]},
        FROM_MESSAGE,
        (["t-1"], "contact_ids", None),
    ),
    (
        "request_id with forbidden characters",
        {"request_id": "crm/churn 1", "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]},
        FROM_MESSAGE,
        (["t-1"], "contact_ids", None),
    ),
    (
        "unknown field",
        {"request_id": "bad-unknown-field", "source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"], "priority": "high"},
        "bad-unknown-field",
        (["t-1"], "contact_ids", None),
    ),
    (
        "SNS notification whose Message is not JSON",
        sns_notification("remove t-1 please"),
        FROM_ENVELOPE,
        (None, None, None),
    ),
    (
        "EventBridge event whose detail is not an object",
        eventbridge_event("remove t-1 please"),
        FROM_ENVELOPE,
        (None, None, None),
    ),
]


def test_invalid_requests_are_each_rejected_once_with_their_body_and_never_reach_constant_contact(
    pipeline, simulator, subtests
):
    # Given one message per kind of contract breach
    sent = [(kind, body, send(pipeline, body), request_id, readable) for kind, body, request_id, readable in INVALID]

    # When the pipeline has run
    settle(pipeline, len(INVALID))

    # Then nothing at all reached Constant Contact (no activity, no read, not even a token refresh)
    assert simulator.calls == []
    # And every message produced exactly one rejected event, carrying the body as sent and what is wrong with it
    assert len(pipeline.results) == len(INVALID)
    for kind, body, message_id, request_id, (tag_ids, source_type, metadata) in sent:
        with subtests.test(kind):
            text = body if isinstance(body, str) else json.dumps(body)
            [event] = [event for event in pipeline.results if event["original_body"] == text]
            if request_id == FROM_MESSAGE:
                request_id = message_id
            elif request_id == FROM_ENVELOPE:
                request_id = body.get("id") or body["MessageId"]  # EventBridge event id, SNS MessageId
            assert event["request_id"] == request_id
            assert (event["state"], event["event_type"], event["activities"]) == ("rejected", "untag.rejected", [])
            assert event["errors"]
            # fields the body did not let us read are null; the ones it did are echoed
            assert (event["tag_ids"], event["source_type"], event["metadata"]) == (tag_ids, source_type, metadata)


def test_a_rejected_event_lists_one_error_per_problem(pipeline, simulator):
    # Given a request with two problems: no source, and an empty tag_ids
    body = json.dumps({"request_id": "bad-twice", "tag_ids": []})
    pipeline.submit([body])

    # When the pipeline has run
    events = settle(pipeline, 1)

    # Then its rejected event lists both problems
    event = events["bad-twice"]
    assert event["state"] == "rejected" and event["original_body"] == body
    assert len(event["errors"]) == 2
    assert any("source" in error for error in event["errors"]) and any("tag_ids" in error for error in event["errors"])
    assert simulator.calls == []


# --- what is echoed and what stays stable ---------------------------------------------------------------


def test_metadata_is_echoed_untouched(pipeline, simulator):
    # Given a request whose metadata holds every kind of JSON value, just under the 4 KB limit
    metadata = {
        "origin": "crm",
        "campaign": {"id": 42, "name": "Black Friday – café ✓", "nested": [[], {}]},
        "values": [None, True, False, 0, -1, 1.5, 1e-7, 2**53 + 1, ""],
        "empty": {},
        "padding": "x" * 3500,
    }
    assert len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode()) < 4096
    pipeline.submit(
        [
            json.dumps(
                {
                    "request_id": "with-metadata",
                    "source": {"contact_ids": ["c-1"]},
                    "tag_ids": ["t-1"],
                    "metadata": metadata,
                }
            )
        ]
    )

    # When the pipeline has run
    events = settle(pipeline, 1)

    # Then the event carries the metadata exactly as sent, and Constant Contact never saw it
    assert events["with-metadata"]["metadata"] == metadata
    assert json.dumps(events["with-metadata"]["metadata"]) == json.dumps(metadata)  # key order and values too
    assert created_bodies(simulator) == [{"source": {"contact_ids": ["c-1"]}, "tag_ids": ["t-1"]}]


def test_the_same_request_delivered_again_makes_one_activity_set_and_one_outcome(pipeline, simulator):
    # Given a request the producer sent twice at once
    body = json.dumps({"request_id": "sent-twice", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]})
    pipeline.submit([body, body])
    events = settle(pipeline, 1)
    first = events["sent-twice"]

    # When it is delivered once more after it finished, and its request_id is reused for another body
    pipeline.submit(
        [body, json.dumps({"request_id": "sent-twice", "source": {"list_ids": ["l-2"]}, "tag_ids": ["t-2"]})]
    )
    assert pipeline.run_until_settled(1, timeout=30)

    # Then Constant Contact was asked once, and every event published for it is the same one, one event_id;
    # the other body under its id is rejected, saying so
    assert simulator.count("POST", REMOVE_TAGS) == 1
    assert created_bodies(simulator) == [{"source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]}]
    published = [event for event in pipeline.results if event["request_id"] == "sent-twice"]
    outcomes = [event for event in published if event["state"] != "rejected"]
    [reused] = {event["event_id"]: event for event in published if event["state"] == "rejected"}.values()
    assert outcomes and all(event == first for event in outcomes)
    assert first["state"] == "completed" and first["tag_ids"] == ["t-1"]
    assert "already used for a different request" in reused["errors"][0] and reused["tag_ids"] == ["t-2"]


# --- outcomes other than completed --------------------------------------------------------------------


def test_activities_that_fail_are_cancelled_or_time_out_end_their_requests_the_same_way(pipeline, simulator):
    # Given Constant Contact ending the activities of three requests as failed, cancelled and timed_out
    outcomes = {"failed": "t-failed", "cancelled": "t-cancelled", "timed_out": "t-timed-out"}
    for outcome, tag_id in outcomes.items():
        simulator.set_outcome(tag_id, outcome)
    pipeline.submit(
        [
            json.dumps({"request_id": f"ends-{tag_id}", "source": {"list_ids": ["l-1"]}, "tag_ids": [tag_id]})
            for tag_id in outcomes.values()
        ]
    )

    # When the pipeline has run
    events = settle(pipeline, 3)

    # Then each request ends in its activity's state, listing the activity as Constant Contact reports it
    for outcome, tag_id in outcomes.items():
        event = events[f"ends-{tag_id}"]
        [activity_id] = activities_removing(simulator, tag_id)
        activity = as_reported(simulator, activity_id)
        assert activity["state"] == outcome
        assert sorted_activities(event) == expected_event(
            event,
            state=outcome,
            tag_ids=[tag_id],
            source_type="list_ids",
            activities=[activity],
            errors=event["errors"],
        )
        # and its errors say why, with Constant Contact's own messages
        assert event["errors"] and all(
            any(message in error for error in event["errors"]) for message in activity["errors"]
        )


def test_a_split_request_whose_activities_end_differently_takes_the_worst_outcome(pipeline, simulator):
    # Given split requests (50 tags per activity) whose activities Constant Contact ends differently
    def tags(prefix: str, count: int) -> list[str]:
        return [f"t-{prefix}{number:03d}" for number in range(count)]

    cases = {  # request -> (tags, outcome of the activity whose first tag it is, expected request state)
        "one-failed": (tags("a", 51), {"t-a050": "failed"}, "failed"),
        "one-cancelled": (tags("b", 51), {"t-b050": "cancelled"}, "cancelled"),
        "timed-out-beats-cancelled": (tags("c", 150), {"t-c000": "cancelled", "t-c050": "timed_out"}, "timed_out"),
        "failed-beats-all": (
            tags("d", 150),
            {"t-d000": "timed_out", "t-d050": "cancelled", "t-d100": "failed"},
            "failed",
        ),
    }
    for _, outcomes, _ in cases.values():
        for tag_id, outcome in outcomes.items():
            simulator.set_outcome(tag_id, outcome)
    pipeline.submit(
        [
            json.dumps({"request_id": request_id, "source": {"contact_ids": ["c-1"]}, "tag_ids": tag_ids})
            for request_id, (tag_ids, _, _) in cases.items()
        ]
    )

    # When the pipeline has run
    events = settle(pipeline, len(cases))

    # Then each request lists all its activities, each in its own final state, and takes the worst of them
    for request_id, (tag_ids, outcomes, state) in cases.items():
        event = events[request_id]
        activity_ids = sorted({aid for tag_id in tag_ids for aid in activities_removing(simulator, tag_id)})
        activities = [as_reported(simulator, activity_id) for activity_id in activity_ids]
        assert sorted(activity["state"] for activity in activities) == sorted(
            list(outcomes.values()) + ["completed"] * (len(activity_ids) - len(outcomes))
        )
        assert sorted_activities(event) == expected_event(
            event,
            state=state,
            tag_ids=tag_ids,
            source_type="contact_ids",
            activities=activities,
            errors=event["errors"],
        )


def test_an_activity_constant_contact_forgets_ends_the_request_timed_out(pipeline, simulator, monkeypatch):
    # Given a request whose activity Constant Contact no longer knows as soon as it is created, and a
    # tolerated miss of 0.36 s (deployed: ACTIVITY_MISSING_HOURS, 6 h)
    monkeypatch.setenv("ACTIVITY_MISSING_HOURS", "0.0001")
    pipeline.submit([json.dumps({"request_id": "forgotten", "source": {"list_ids": ["l-1"]}, "tag_ids": ["t-1"]})])

    def forget_new_activities(_pipeline) -> None:
        for activity_id, activity in simulator.activities.items():
            if not activity["forgotten"]:
                simulator.forget_activity(activity_id)

    # When the pipeline has run
    events = settle(pipeline, 1, on_progress=forget_new_activities)

    # Then the request ends timed_out, its activity reported timed_out with the reason
    event = events["forgotten"]
    [activity_id] = simulator.activities
    assert simulator.count("GET", f"/v3/activities/{activity_id}", 404) >= 2  # missing, then missing too long
    assert event["state"] == "timed_out" and event["errors"]
    [activity] = event["activities"]
    assert (activity["activity_id"], activity["state"]) == (activity_id, "timed_out")
    assert activity["created_at"] == simulator.activities[activity_id]["created_at"]
    assert activity["errors"]
