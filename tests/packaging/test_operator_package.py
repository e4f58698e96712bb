"""The operator tool is one installable distribution: `pip wheel .` builds it, and its `untag` script runs.

The wheel holds the operator package and the service's domain package (``untag``, from
layers/shared) and nothing of the developer kit, the tests or the benchmarks.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_console_script_is_the_cli_and_its_help_exits_0(capsys):
    # Given the console script pyproject.toml declares
    module_name, _, function_name = PYPROJECT["project"]["scripts"]["untag"].partition(":")
    # When it is called as `untag --help`
    main = getattr(importlib.import_module(module_name), function_name)
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    # Then it prints the commands and exits 0
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert all(command in out for command in ("submit", "status", "pending", "ambiguous", "dlq", "results"))


def test_the_wheel_ships_the_cli_with_the_domain_package_and_its_script_runs_outside_the_checkout(tmp_path):
    pytest.importorskip("setuptools", reason="the build backend (in requirements-dev.txt) builds the wheel offline")
    # Given a copy of what the distribution is built from (the build leaves nothing in the checkout)
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "untag_operator", source / "untag_operator", ignore=skip)
    shutil.copytree(ROOT / "layers" / "shared" / "untag", source / "layers" / "shared" / "untag", ignore=skip)
    # When `pip wheel` builds it
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    [wheel] = (tmp_path / "dist").glob("cc_untag-*.whl")
    # Then it holds the operator tool and the domain package, its console script and run-time dependencies
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    assert {"untag_operator/cli.py", "untag_operator/dlq.py", "untag/store.py", "untag/redrive.py"} <= set(names)
    assert {name.split("/")[0] for name in names} == {"untag_operator", "untag", info}
    assert "untag = untag_operator.cli:main" in entry_points
    assert "Requires-Dist: boto3" in metadata and "Requires-Dist: aws-lambda-powertools" in metadata

    # When it is installed apart from the checkout (its dependencies are those of this environment)
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True, timeout=300
    )
    environment = {**os.environ, "PYTHONPATH": str(site)}
    answer = subprocess.run(
        [str(site / "bin" / "untag"), "--help"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then its `untag --help` runs, with the domain package from the wheel
    assert answer.returncode == 0, answer.stderr
    assert "submit" in answer.stdout and "dlq" in answer.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import untag; print(untag.__file__)"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(site)
