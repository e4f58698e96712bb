"""`make bench` (see bench/__main__.py): what its sections share, the repository and a row of the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Row(NamedTuple):
    """One row of the table ``make bench`` prints."""

    scenario: int  # the number of its measure in bench/__main__.py's list: the table shows them in that order
    measure: str
    value: Any
    target: Any = ""
    naive: Any = ""
