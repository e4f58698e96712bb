"""`make bench`: how frugal the service is with Constant Contact and AWS, how fast its handlers are,
how light its cold start.

Prints a table and writes bench/results.json. The measures, by section (a module of this package each):

1. Constant Contact POSTs for 10,000 single-contact requests removing the same tag (``calls``).
2. GET calls of one poller run with 2,000 activities pending (``calls``).
3. Intake and poller throughput, records (requests) per second (``calls``).
4. Cold import time of each handler module over a bare `import boto3`, here and as deployed, and the
   built layer's size (``cold_start``, ``layer``).
5. AWS API calls per request (DynamoDB, SNS, Secrets Manager) over scenario 1 (``calls``).
6. A burst of 3,000 requests that share nothing, in virtual time, against the real rate limit (``burst``).
7. Constant Contact calls per 1,000 e-mail addresses resolved, cold and warm contact directory (``resolution``).

A section has ``measure()`` (its figures, merged into bench/results.json), ``rows(results)`` (its rows of
the table, by the number of their measure above) and ``notes(results)`` (a paragraph after the table, or
""). Another section is one more module and its line in SECTIONS.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from bench import ROOT, burst, calls, cold_start, resolution

RESULTS = ROOT / "bench" / "results.json"
SECTIONS = (
    calls,
    cold_start,
    burst,
    resolution,
)


def main() -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "bench"
    results: dict = {}
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # the handlers' EMF lines
        for section in SECTIONS:
            results.update(section.measure())
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    rows = sorted((row for section in SECTIONS for row in section.rows(results)), key=lambda row: row.scenario)
    print(f"| {'measure':<44} | {'value':>8} | {'target':>8} | {'naive':>6} |")
    print(f"|{'-' * 46}|{'-' * 10}:|{'-' * 10}:|{'-' * 8}:|")
    for _, name, value, target, naive in rows:
        print(f"| {name:<44} | {value:>8} | {target:>8} | {naive:>6} |")
    for section in SECTIONS:
        if text := section.notes(results):
            print(f"\n{text}")
    print(f"\nWritten to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
