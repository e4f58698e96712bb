"""AWS's limits (tests/aws_rules/limits.py) in the Python processes a test starts, e.g. `python -m devkit.runner`.

The ``aws_limits`` fixture puts this directory first on PYTHONPATH and sets AWS_RULES_LIMITS=1; Python
imports ``sitecustomize`` at start-up. Without the switch, or without this project's packages, nothing happens.
"""

import os

if os.environ.get("AWS_RULES_LIMITS") == "1":
    try:
        from tests.aws_rules.limits import enforce_for_process
    except Exception:  # noqa: BLE001 - another interpreter or environment: run without the rules
        pass
    else:
        enforce_for_process()
