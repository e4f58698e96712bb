"""The layer as deployed: built as ``sam build`` does, its size, the runtime's boto3, the functions' environment."""

from __future__ import annotations

import contextlib
import filecmp
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import distribution
from pathlib import Path

from bench import ROOT

LAYER_SOURCE = ROOT / "layers" / "shared"
LAYER_BUILD = ROOT / ".aws-sam" / "build" / "SharedLayer"
# What Lambda sets in every execution environment of these functions (Tracing: Active adds the X-Ray ones).
LAMBDA_VARIABLES = {
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "_HANDLER": "app.lambda_handler",
}


def _sam_build_is_current() -> bool:
    """.aws-sam/build/SharedLayer was built from layers/shared/requirements.txt and untag/ as they are now."""
    built = LAYER_BUILD / "python"
    sources = [LAYER_SOURCE / "requirements.txt"] + [
        f for f in (LAYER_SOURCE / "untag").rglob("*") if f.is_file() and "__pycache__" not in f.parts
    ]
    return built.is_dir() and all(
        (built / f.relative_to(LAYER_SOURCE)).is_file()
        and filecmp.cmp(f, built / f.relative_to(LAYER_SOURCE), shallow=False)
        for f in sources
    )


@contextlib.contextmanager
def built_layer():
    """The layer's contents as ``sam build`` makes them: (directory holding ``python/``, how it was made).

    Either .aws-sam/build/SharedLayer when it is current (``make build``), or the recipe SAM runs
    (layers/shared/Makefile, target build-SharedLayer) run here into a temporary directory, with this
    interpreter (it must be Python 3.13, as the bytecode is) and PyPI or pip's cache for the wheels.
    """
    if _sam_build_is_current():
        yield LAYER_BUILD, "sam build (.aws-sam/build/SharedLayer)"
        return
    with tempfile.TemporaryDirectory(prefix="bench-layer-") as directory:
        subprocess.run(
            [
                "make",
                "--no-print-directory",
                "-C",
                str(LAYER_SOURCE),
                "build-SharedLayer",
                f"ARTIFACTS_DIR={directory}",
                f"LAYER_PYTHON={sys.executable}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        yield Path(directory), "layers/shared/Makefile build-SharedLayer, as sam build runs it (no current sam build)"


def tree_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file() and not f.is_symlink())


def zipped_bytes(directory: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        return Path(shutil.make_archive(str(Path(scratch) / "layer"), "zip", directory)).stat().st_size


def distribution_closure(name: str) -> set[str]:
    """The installed distributions ``name`` needs, itself included (extras ignored)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    pending = [name]
    while pending:
        dist = distribution(pending.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


@contextlib.contextmanager
def lambda_runtime_packages():
    """A directory with only what the Lambda runtime brings (boto3 and what it needs, with their metadata)."""
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as directory:
        for name in sorted(distribution_closure("boto3")):
            for entry in {Path(str(f)).parts[0] for f in distribution(name).files or ()}:
                source = Path(str(distribution(name).locate_file(entry)))
                link = Path(directory) / entry
                if entry.endswith(".data") or entry == ".." or not source.exists() or link.exists():
                    continue
                link.symlink_to(source)
        yield directory


def deployed_environment(logical_id: str) -> dict[str, str]:
    """The function's variables as template.yaml resolves them, plus what Lambda sets (LAMBDA_TASK_ROOT...)."""
    from moto import mock_aws

    from devkit.stack import provision

    with mock_aws():
        variables = provision().function_environment(logical_id)
    return {**variables, **LAMBDA_VARIABLES, "AWS_LAMBDA_FUNCTION_NAME": logical_id}
