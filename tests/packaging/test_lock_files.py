"""The lock files: every package pinned with its hashes, the layer's without what the Lambda runtime provides,
and the dev environment testing the very versions the layer ships. `make lock` regenerates them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER_IN, LAYER_LOCK = ROOT / "layers" / "shared" / "requirements.in", ROOT / "layers" / "shared" / "requirements.txt"
DEV_IN, DEV_LOCK = ROOT / "requirements-dev.in", ROOT / "requirements-dev.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def pins(path: Path) -> dict[str, set[str]]:
    """Package -> pinned versions (a universal lock may pin two, each under its own marker)."""
    found: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            found.setdefault(name(match.group(1)), set()).add(match.group(2))
    return found


def requirements(path: Path) -> list[str]:
    """The requirement entries of a lock file (continuation lines joined), comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("lock", [LAYER_LOCK, DEV_LOCK], ids=["layer", "dev"])
def test_every_locked_package_is_pinned_with_its_hashes(lock):
    entries = requirements(lock)
    assert entries
    for entry in entries:
        assert PIN.match(entry), f"{lock.name}: not pinned with ==: {entry[:80]}"
        assert "--hash=sha256:" in entry, f"{lock.name}: no hash: {entry[:80]}"


def test_the_layer_lock_leaves_out_what_the_lambda_runtime_provides():
    assert not {"boto3", "botocore", "s3transfer"} & pins(LAYER_LOCK).keys()


@pytest.mark.parametrize(("source", "lock"), [(LAYER_IN, LAYER_LOCK), (DEV_IN, DEV_LOCK)], ids=["layer", "dev"])
def test_each_lock_holds_the_versions_its_input_asks_for(source, lock):
    locked = pins(lock)
    for package, versions in pins(source).items():
        assert locked.get(package) == versions, f"{lock.name} is out of date for {package}: run `make lock`"


def test_the_dev_environment_tests_the_versions_the_layer_ships():
    dev = pins(DEV_LOCK)
    for package, versions in pins(LAYER_LOCK).items():
        assert dev.get(package) == versions, f"{package}: layer {versions}, dev {dev.get(package)}"
