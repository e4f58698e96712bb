"""Names in the CRM's words (contract section 4): tag names and e-mail addresses, read and normalised."""

from __future__ import annotations

import re
from typing import Any

from untag.text import kind, short

# Contract section 4: tags by name (1-255 characters, matched after trimming, ignoring case) and
# contacts by e-mail address (trimmed, lower-cased; resolved through the contact directory).
TAG_NAME_MAX = 255
EMAIL_MAX = 254  # RFC 5321's path limit; Constant Contact stores at most 80 characters
# Addresses one request may name: resolved to contact ids (up to 64 characters each), they stay in the
# request's record (one DynamoDB item, 400 KB) with its plan until its activities are created.
EMAILS_MAX = 5_000
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def read_tag_names(value: Any, errors: list[str]) -> tuple[str, ...]:
    """Tag names, trimmed, de-duplicated ignoring case (the first spelling kept)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.append(f"tag_names: must be an array of tag names, got {kind(value)}")
        return ()
    bad = [item for item in value if not (isinstance(item, str) and item.strip() and len(item) <= TAG_NAME_MAX)]
    if bad:
        shown = ", ".join(short(item) for item in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        errors.append(f"tag_names: each must be a string of 1-{TAG_NAME_MAX} characters; invalid: {shown}{more}")
        return ()
    names: dict[str, str] = {}
    for item in value:
        names.setdefault(tag_name_key(item), item.strip())
    return tuple(names.values())


def tag_name_key(name: str) -> str:
    """How tag names are matched: after trimming, ignoring case."""
    return name.strip().casefold()


def normalise_email(address: str) -> str:
    return address.strip().lower()


def read_emails(value: Any, where: str, errors: list[str], *, required: bool) -> tuple[str, ...]:
    """E-mail addresses, normalised (trimmed, lower-case) and de-duplicated; any invalid one is an error."""
    if value is None:
        if required:
            errors.append(f"{where}: required, a non-empty array of e-mail addresses")
        return ()
    if not isinstance(value, list):
        errors.append(f"{where}: must be an array of e-mail addresses, got {kind(value)}")
        return ()
    if not value and required:
        errors.append(f"{where}: must not be empty")
        return ()
    if len(value) > EMAILS_MAX:
        errors.append(f"{where}: {len(value)} addresses, more than the cap of {EMAILS_MAX} per request")
        return ()
    bad = [
        position
        for position, item in enumerate(value)
        if not (isinstance(item, str) and len(item) <= EMAIL_MAX and EMAIL_PATTERN.fullmatch(item.strip()))
    ]
    if bad:  # (positions, not the addresses: they are personal data)
        shown = ", ".join(str(position) for position in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        errors.append(f"{where}: invalid e-mail addresses at positions {shown}{more}")
        return ()
    return tuple(dict.fromkeys(normalise_email(item) for item in value))
