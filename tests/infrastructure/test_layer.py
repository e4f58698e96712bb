"""The shared layer brings no boto3 or botocore of its own: the Lambda runtime has them, and a second copy
would shadow the runtime's and weigh 25 MB (docs/design.md, "The shared layer"). How the layer is built
is checked with the template (test_template.py); the lock's pins, in tests/packaging/test_lock_files.py.

Here, what each requirement asks for, extras included, is followed through the metadata of the
distributions installed here (offline): `make test` installs the dev lock, which holds the layer's
lock. A requirement whose distribution is not installed (an extra added to requirements.in without
`make lock`, say) fails the test rather than passing unchecked.
"""

from __future__ import annotations

import re
from collections import deque
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared"
RUNTIME_PROVIDED = {"boto3", "botocore"}
# Every pip requirements file of the layer: requirements.in (what is asked for) and its lock, requirements.txt.
REQUIREMENT_FILES = sorted(p for p in LAYER.glob("requirements*") if p.suffix in (".in", ".txt", ".lock"))


def read_requirements(path: Path) -> list[Requirement]:
    """The requirements of a pip requirements file (options, hashes, comments and includes left out)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    requirements = []
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", line).split(" --")[0].strip()
        if line and not line.startswith("-"):
            requirements.append(Requirement(line))
    return requirements


def pulled_in(requirements: list[Requirement]) -> dict[str, str]:
    """Every distribution the requirements install, each with the shortest chain that brings it in."""
    chains: dict[str, str] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    pending = deque((requirement, requirement.name) for requirement in requirements)
    while pending:
        requirement, chain = pending.popleft()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in visited:
            continue
        visited.add((name, frozenset(requirement.extras)))
        chains.setdefault(name, chain)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            pytest.fail(
                f"{chain}: {name} is not installed here, so what it pulls in cannot be read; "
                "`make test` installs requirements-dev.txt (the layer's requirements included)"
            )
        for line in dist.requires or ():
            needed = Requirement(line)
            if any(
                needed.marker is None or needed.marker.evaluate({"extra": extra}) for extra in ("", *requirement.extras)
            ):
                pending.append((needed, f"{chain} -> {needed.name}"))
    return chains


def test_the_layer_has_requirement_files():
    assert {LAYER / "requirements.in", LAYER / "requirements.txt"} <= set(REQUIREMENT_FILES)


@pytest.mark.parametrize("path", REQUIREMENT_FILES, ids=lambda p: p.name)
def test_the_layer_pulls_in_no_boto3_or_botocore(path):
    # Given what the layer's requirements install, directly or not
    installed = pulled_in(read_requirements(path))
    # Then none of it is a second AWS SDK: the runtime's would be shadowed by it (/opt/python comes first)
    second_sdk = {name: chain for name, chain in installed.items() if name in RUNTIME_PROVIDED}
    assert not second_sdk, f"{path.name} pulls in the runtime's AWS SDK again: {second_sdk}"


def test_the_check_follows_extras_and_dependencies():
    # Given a requirement whose extra asks for boto3 (Powertools' aws-sdk extra), as the tracer extra
    # asks for aws-xray-sdk, which asks for botocore
    installed = pulled_in([Requirement("aws-lambda-powertools[aws-sdk]")])
    # Then the check sees boto3 and, through it, botocore
    assert installed["boto3"] == "aws-lambda-powertools -> boto3"
    assert installed["botocore"] == "aws-lambda-powertools -> boto3 -> botocore"
    # And without the extra, neither
    assert not RUNTIME_PROVIDED & set(pulled_in([Requirement("aws-lambda-powertools")]))
