"""The Constant Contact account `make run` and the end-to-end tests talk to: the tags and contacts that
the sample requests in events/ name (events/intake-names-and-emails.json), in the simulator."""

from __future__ import annotations

from typing import Any

TAGS = {"t-churn-2026": "Churned-2026", "t-vip": "VIP"}
CONTACTS = {  # address -> (contact id, lists, tags)
    "ana@example.com": ("c-ana", ("l-newsletter",), ("t-churn-2026",)),
    "bo@example.com": ("c-bo", ("l-newsletter", "l-promotions"), ("t-churn-2026", "t-vip")),
    "carla@example.com": ("c-carla", ("l-promotions",), ("t-vip",)),
}
NEWSLETTER_READERS = 40  # more members of l-newsletter, for the previews' counts


def seed(simulator: Any) -> None:
    """Give the simulator's account the sample tags and contacts."""
    for tag_id, name in TAGS.items():
        simulator.add_tag(name, tag_id)
    for email, (contact_id, lists, tags) in CONTACTS.items():
        simulator.add_contact(email, contact_id=contact_id, list_ids=lists, tag_ids=tags)
    simulator.seed_contacts(NEWSLETTER_READERS, list_ids=["l-newsletter"])
