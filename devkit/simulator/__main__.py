"""`python -m devkit.simulator`: the Constant Contact simulator on 127.0.0.1, until interrupted.

Prints one JSON line: the API's base URL, the authorize and token URLs (the client id is ``sim-client``, its
secret ``sim-secret``: ``untag auth login`` works against them) and a valid token secret.
"""

from __future__ import annotations

import argparse
import json
import time

from devkit.simulator.server import ConstantContactSimulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devkit.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--rate-limit", type=float, default=4.0, help="API requests per second (0: unlimited)")
    parser.add_argument("--daily-quota", type=int, default=10_000, help="API requests per day (0: unlimited)")
    parser.add_argument("--reads-to-finish", type=int, default=2)
    parser.add_argument("--seconds-to-finish", type=float, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-lived-refresh-tokens", action="store_true")
    parser.add_argument("--foreign-activities", type=int, default=0)
    args = parser.parse_args(argv)
    sim = ConstantContactSimulator(
        rate_limit_per_second=args.rate_limit or None,
        daily_quota=args.daily_quota or None,
        reads_to_finish=args.reads_to_finish,
        seconds_to_finish=args.seconds_to_finish,
        latency=args.latency,
        rotating_refresh_tokens=not args.long_lived_refresh_tokens,
        fault_rate=args.fault_rate,
        seed=args.seed,
    ).start(port=args.port)
    sim.add_foreign_activities(args.foreign_activities)
    print(
        json.dumps(
            {
                "base_url": sim.base_url,
                "authorize_url": sim.authorize_url,
                "token_url": sim.token_url,
                "token_secret": sim.issue_tokens(),
            }
        ),
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
