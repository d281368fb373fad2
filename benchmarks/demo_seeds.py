"""
The demo over many seeds: how often its report names the true best variant,
and how often it names a winner when every variant converts alike.

Each seed runs the whole demo (relay, clients, emitters, the endpoint on
127.0.0.1, the readout of what it kept). With ``--null`` every variant gets
the same rate, so any winner is a false positive; the readout controls the
family-wise error rate at 5 %, and the script fails (exit 1) when the false
winners are more than a binomial(seeds, 0.05) count exceeds with 1 %
probability, or, without ``--null``, when fewer than half the seeds name
the true best.

Usage::

    python benchmarks/demo_seeds.py [--seeds 20] [--users 20000] [--null]
"""

from __future__ import annotations

import argparse
import sys
import time

import anyio
from scipy import stats

from flagstaff.demo import DemoOptions, run_demo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first", type=int, default=1, help="the first seed")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--null", action="store_true")
    args = parser.parse_args()

    named = winners = 0
    slowest = 0.0
    print("seed  best      winner    right  elapsed")
    for seed in range(args.first, args.first + args.seeds):
        options = DemoOptions(users=args.users, seed=seed, null=args.null,
                              duration=0.0, after_rollout=200)
        started = time.monotonic()
        report = anyio.run(run_demo, options)
        elapsed = time.monotonic() - started
        slowest = max(slowest, elapsed)
        named += report.correct
        winners += report.readout.winner is not None
        print(f"{seed:>4}  {report.model.best or '-':<8}  "
              f"{report.readout.winner or '-':<8}  {'yes' if report.correct else 'no':<5}  "
              f"{elapsed:5.1f} s")

    print(f"\n{named} of {args.seeds} seeds named the truth; {winners} named a "
          f"winner; slowest run {slowest:.1f} s")
    if args.null:
        allowed = int(stats.binom.ppf(0.99, args.seeds, 0.05))
        print(f"false winners: {winners} (at most {allowed} expected at alpha 0.05)")
        return 0 if winners <= allowed else 1
    return 0 if named * 2 > args.seeds else 1


if __name__ == "__main__":
    sys.exit(main())
