"""Cold start (scenario 4): each handler module's import in a fresh interpreter, over a bare `import boto3`.

Here (the layer's sources on this virtualenv) and as deployed (the layer as `sam build` makes it, the
runtime's boto3 and nothing else on the path, the template's environment and Lambda's, tracing on);
with the built layer's size, unzipped and zipped.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

from bench import ROOT, Row
from bench.layer import (
    LAYER_SOURCE,
    built_layer,
    deployed_environment,
    lambda_runtime_packages,
    tree_bytes,
    zipped_bytes,
)

FUNCTIONS = (("intake", "IntakeFunction"), ("poller", "PollerFunction"))


def _import_once(statement: str, path: list[str], environment: dict[str, str], isolated: bool) -> float:
    """One import in a fresh interpreter that writes no bytecode, with ``path`` first on its path (PYTHONPATH).

    ``isolated``: only the standard library and ``path`` are importable (no site, no PYTHON* variables of
    this process), as in Lambda, where nothing of this virtualenv exists.
    """
    variables = {**os.environ, **environment}
    inherited = variables.pop("PYTHONPATH", "")
    if isolated:
        variables = {name: value for name, value in variables.items() if not name.startswith("PYTHON")}
    variables["PYTHONPATH"] = os.pathsep.join([*path, *([inherited] if inherited and not isolated else [])])
    flags = ["-S", "-s", "-P", "-B"] if isolated else ["-P", "-B"]
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return float(
        subprocess.run(
            [sys.executable, *flags, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env=variables,
            cwd=tempfile.gettempdir(),
        ).stdout
    )


def import_ratio(
    measured: tuple[str, list[str], dict[str, str]],
    baseline: tuple[str, list[str], dict[str, str]],
    *,
    isolated: bool = False,
    runs: int = 11,
) -> tuple[float, float, float]:
    """(measured seconds, baseline seconds, ratio): medians over alternating runs of the two imports.

    Alternating keeps the ratio fair on a shared machine, where load changes from second to second.
    """
    pairs = [(_import_once(*measured, isolated), _import_once(*baseline, isolated)) for _ in range(runs)]
    return (
        statistics.median(m for m, _ in pairs),
        statistics.median(b for _, b in pairs),
        statistics.median(m / b for m, b in pairs),
    )


def _figures(function: str, seconds: float, boto3_seconds: float, ratio: float) -> dict:
    return {
        f"{function}_import_ms": round(seconds * 1000, 1),
        f"{function}_import_boto3_ms": round(boto3_seconds * 1000, 1),
        f"{function}_import_ratio_to_boto3": round(ratio, 2),
    }


def measure() -> dict:
    """Cold import of each handler over a bare ``import boto3``: here (this virtualenv) and as deployed."""
    layer = str(LAYER_SOURCE)
    results: dict = {}
    for function, _ in FUNCTIONS:
        path = [str(ROOT / "functions" / function), layer]
        results.update(_figures(function, *import_ratio(("import app", path, {}), ("import boto3", [layer], {}))))
    try:
        with built_layer() as (layer_root, method), lambda_runtime_packages() as runtime:
            python = layer_root / "python"
            results["layer"] = {
                "made_by": method,
                "unzipped_bytes": tree_bytes(layer_root),
                "zipped_bytes": zipped_bytes(layer_root),
                "bytecode_bytes": sum(f.stat().st_size for f in python.rglob("*.pyc")),
                "boto3_or_botocore_inside": sorted(name for name in ("boto3", "botocore") if (python / name).exists()),
            }
            # As deployed: the function's code, the built layer, then the runtime's boto3 and nothing else
            # on the path (Lambda puts /var/task and /opt/python before the runtime's packages), the
            # template's environment plus Lambda's own (LAMBDA_TASK_ROOT, Tracing: Active), no bytecode written.
            deployed: dict = {}
            for function, logical_id in FUNCTIONS:
                task_root = str(ROOT / "functions" / function)
                environment = {**deployed_environment(logical_id), "LAMBDA_TASK_ROOT": task_root}
                ratio = import_ratio(
                    ("import app", [task_root, str(python), runtime], environment),
                    ("import boto3", [runtime], environment),
                    isolated=True,
                )
                deployed.update(_figures(function, *ratio))
            results["as_deployed"] = deployed
    except subprocess.CalledProcessError as error:  # no network and no pip cache, or not Python 3.13
        results["layer"] = {"error": f"could not build the layer: {error}"}
    return {"cold_start": results}


def rows(results: dict) -> list[Row]:
    """The cold import here; the built layer's size and the cold import as deployed (none if it was not built)."""
    cold = results["cold_start"]
    here = [
        Row(4, "intake cold import / import boto3", cold["intake_import_ratio_to_boto3"], "<= 1.3"),
        Row(4, "poller cold import / import boto3", cold["poller_import_ratio_to_boto3"], "<= 1.3"),
    ]
    layer, deployed = cold["layer"], cold.get("as_deployed")
    if not deployed:
        return here
    return here + [
        Row(4, "layer unzipped (MB, bytecode included)", round(layer["unzipped_bytes"] / 1e6, 2), "<= 10"),
        Row(4, "layer zipped (MB)", round(layer["zipped_bytes"] / 1e6, 2)),
        Row(4, "layer's own boto3/botocore", ", ".join(layer["boto3_or_botocore_inside"]) or "none", "none"),
        Row(4, "intake cold import as deployed / boto3", deployed["intake_import_ratio_to_boto3"], "<= 1.2"),
        Row(4, "poller cold import as deployed / boto3", deployed["poller_import_ratio_to_boto3"], "<= 1.2"),
    ]


def notes(results: dict) -> str:
    cold = results["cold_start"]
    lines = []
    for where, numbers in (("here", cold), ("as deployed", cold.get("as_deployed", {}))):
        times = [
            f"{function} {numbers[f'{function}_import_ms']} ms / {numbers[f'{function}_import_boto3_ms']} ms"
            for function, _ in FUNCTIONS
            if f"{function}_import_ms" in numbers
        ]
        lines.append(f"cold import {where} (handler / import boto3, medians): " + "; ".join(times))
    layer = cold["layer"]
    lines.append(f"layer: {layer.get('made_by') or layer.get('error')}.")
    return "\n".join(lines)
