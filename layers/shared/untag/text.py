"""Text helpers for reading JSON bodies: UTF-8 sizes, lone surrogates, and short descriptions for errors."""

from __future__ import annotations

import json
from typing import Any


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (a lone surrogate counted as the 3 bytes an escape-less encoder would write)."""
    return len(text.encode("utf-8", "surrogatepass"))


def utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(valid_unicode(value))
    return text if len(text) <= 40 else text[:37] + "..."


def field_name(key: str) -> str:
    key = valid_unicode(key)
    return key if len(key) <= 40 else key[:37] + "..."


def valid_unicode(text: str) -> str:
    """``text`` with any lone surrogate written as its escape, so that every JSON parser can read it back."""
    return text if utf8_ok(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def lone_surrogate(value: Any, where: str, depth: int = 0) -> str | None:
    """Where the first string holding a lone UTF-16 surrogate is (valid JSON escapes, invalid Unicode)."""
    if depth > 200:
        return None  # deeper than any request may nest; the depth rules reject it
    if isinstance(value, str):
        return None if utf8_ok(value) else where
    if isinstance(value, list):
        for position, item in enumerate(value):
            found = lone_surrogate(item, f"{where}[{position}]", depth + 1)
            if found:
                return found
    if isinstance(value, dict):
        for key, item in value.items():
            found = lone_surrogate(key, f"{where} key", depth + 1) or lone_surrogate(
                item, f"{where}.{field_name(key)}", depth + 1
            )
            if found:
                return found
    return None
