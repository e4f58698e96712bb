"""Helpers for the contact and tag tests: HTTP calls that follow next links, and the OpenAPI shapes."""

from __future__ import annotations

import re

import jsonschema
import requests

from devkit.simulator import ConstantContactSimulator

START = 1_900_000_000.0  # 2030-03-17T17:46:40Z
REMOVE = "/activities/contacts_taggings_remove"
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def api(sim: ConstantContactSimulator) -> requests.Session:
    session = requests.Session()
    session.headers["Accept"] = "application/json"
    session.headers["Authorization"] = f"Bearer {sim.issue_tokens()['access_token']}"
    return session


def get(session, sim, path, **params) -> requests.Response:
    return session.get(sim.base_url + path, params=params, timeout=10)


def follow(session, sim, href: str) -> requests.Response:
    assert href.startswith("/v3/"), href  # relative, like the real API's
    return session.get(sim.base_url.removesuffix("/v3") + href, timeout=10)


def pages(session, sim, path, **params) -> list[dict]:
    """Every page of a listing, following the next links."""
    resp = get(session, sim, path, **params)
    bodies = []
    while True:
        assert resp.status_code == 200, resp.text
        bodies.append(resp.json())
        if "_links" not in bodies[-1]:
            return bodies
        resp = follow(session, sim, bodies[-1]["_links"]["next"]["href"])


def listed(session, sim, **params) -> list[dict]:
    return [c for body in pages(session, sim, "/contacts", **params) for c in body["contacts"]]


def ids(contacts: list[dict]) -> list[str]:
    return [c["contact_id"] for c in contacts]


def remove_tags(session, sim, body) -> str:
    resp = session.post(sim.base_url + REMOVE, json=body, timeout=5)
    assert resp.status_code == 201, resp.text
    return resp.json()["activity_id"]


# ----- the spec's shapes (constant-contact-openapi.yaml 1.0.221; property names and types transcribed from
# getAllContacts_200_response, getContactById_200_response(_email_address), getAllTags_200_response and
# Tag; additionalProperties false so that nothing outside the spec slips in) ----------------------------
def _obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


STR, INT, DATE_TIME = {"type": "string"}, {"type": "integer"}, {"type": "string", "format": "date-time"}
UUIDS = {"type": "array", "items": {"type": "string", "format": "uuid"}, "maxItems": 50}
EMAIL_ADDRESS = _obj(
    {
        "address": {"type": "string", "maxLength": 80},
        "permission_to_send": STR,
        "created_at": DATE_TIME,
        "updated_at": DATE_TIME,
        "opt_in_source": STR,
        "opt_in_date": DATE_TIME,
        "opt_out_source": STR,
        "opt_out_date": DATE_TIME,
        "opt_out_reason": {"type": "string", "maxLength": 255},
        "confirm_status": STR,
    },
    required=("address",),
)
CONTACT = _obj(
    {
        "contact_id": {"type": "string", "format": "uuid"},
        "email_address": EMAIL_ADDRESS,
        "first_name": {"type": "string", "maxLength": 50},
        "last_name": {"type": "string", "maxLength": 50},
        "job_title": {"type": "string", "maxLength": 50},
        "company_name": {"type": "string", "maxLength": 50},
        "birthday_month": INT,
        "birthday_day": INT,
        "anniversary": {"type": "string", "maxLength": 10},
        "update_source": STR,
        "create_source": STR,
        "created_at": DATE_TIME,
        "updated_at": DATE_TIME,
        "deleted_at": {"type": "string", "format": "date"},
        "custom_fields": {"type": "array", "maxItems": 25},
        "phone_numbers": {"type": "array", "maxItems": 3},
        "street_addresses": {"type": "array", "maxItems": 3},
        "list_memberships": UUIDS,
        "taggings": UUIDS,
        "notes": {"type": "array", "maxItems": 150},
        "sms_channel": {"type": "object"},
    },
    # not required by the spec; what the simulator always sends
    required=("contact_id", "email_address", "create_source", "update_source", "created_at", "updated_at"),
)
NEXT = _obj({"next": _obj({"href": STR}, required=("href",))}, required=("next",))
CONTACTS_PAGE = _obj(
    {"contacts": {"type": "array", "items": CONTACT}, "contacts_count": INT, "_links": NEXT, "status": STR},
    required=("contacts",),
)
TAG = _obj(
    {
        "tag_id": {"type": "string", "format": "uuid"},
        "name": STR,
        "contacts_count": INT,
        "created_at": DATE_TIME,
        "updated_at": DATE_TIME,
        "tag_source": STR,
    },
    required=("tag_id", "name", "created_at", "updated_at", "tag_source"),
)
TAG_NEXT = _obj({"next": _obj({"href": STR, "next": _obj({"href": STR})}, required=("href",))}, required=("next",))
TAGS_PAGE = _obj({"tags": {"type": "array", "items": TAG}, "_links": TAG_NEXT}, required=("tags",))


def conforms(body: dict, schema: dict) -> None:
    """Validate against a schema, its formats (date-time, date, uuid) included."""
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema.Draft202012Validator(schema, format_checker=checker).validate(body)
