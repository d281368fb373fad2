"""
Batch evaluation throughput: 1 million users against a 10-flag config, in
flag evaluations per second, with one thread and with two, beside
configcat-client's per-user loop on a sample of the same users.

The config has five flags whose rule ``plan IS ONE OF ['free']`` serves a
three-way percentage split, and five plain four-way splits. Targets: at
least 10 million evaluations per second on one thread, and 1.7 times that
with two. Exits with 1 when a target is missed.

Usage::

    python benchmarks/batch_throughput.py [--users 1000000] [--sample 20000]
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time

import pyarrow as pa

import flagstaff
from flagstaff.batch import evaluate_table

RULE_FLAGS = [f"onboarding{i}" for i in range(5)]
SPLIT_FLAGS = [f"split{i}" for i in range(5)]


def ten_flag_config() -> str:
    def option(percentage, value, variation):
        return {"p": percentage, "v": {"s": value}, "i": variation}

    flags = {}
    for key in RULE_FLAGS:
        flags[key] = {
            "t": 1,
            "r": [{"c": [{"u": {"a": "plan", "c": 0, "l": ["free"]}}],
                   "p": [option(34, "feature1", "a"), option(33, "feature2", "b"),
                         option(33, "feature3", "c")]}],
            "v": {"s": "default"}, "i": "d",
        }
    for key in SPLIT_FLAGS:
        flags[key] = {
            "t": 1,
            "p": [option(25, value, value) for value in ("w", "x", "y", "z")],
            "v": {"s": "w"}, "i": "w",
        }
    return json.dumps({"p": {"s": "YmF0Y2gtYmVuY2htYXJrLXNhbHQ="}, "f": flags})


def users(count: int) -> pa.Table:
    return pa.table({
        "Identifier": [f"user-{i:08d}" for i in range(count)],
        "plan": ["free" if i % 3 else "premium" for i in range(count)],
    })


def best_rate(function, evaluations: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return evaluations / best


def configcat_rate(config_json: str, table: pa.Table, sample: int) -> float:
    import configcatclient
    from configcatclient.localfiledatasource import LocalFileFlagOverrides
    from configcatclient.overridedatasource import OverrideBehaviour

    logging.getLogger("configcat").setLevel(logging.CRITICAL)
    rows = table.slice(0, sample).to_pylist()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "config.json")
        with open(path, "w") as file:
            file.write(config_json)
        options = configcatclient.ConfigCatOptions(
            polling_mode=configcatclient.PollingMode.manual_poll(),
            flag_overrides=LocalFileFlagOverrides(path, OverrideBehaviour.LocalOnly),
        )
        client = configcatclient.get("flagstaff-benchmarks/batch", options)
        people = [configcatclient.user.User(row["Identifier"], custom={"plan": row["plan"]})
                  for row in rows]
        keys = RULE_FLAGS + SPLIT_FLAGS

        def loop():
            for person in people:
                for key in keys:
                    client.get_value(key, "default", person)

        try:
            return best_rate(loop, len(people) * len(keys), 1)
        finally:
            client.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000,
                        help="users in configcat-client's loop (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    config_json = ten_flag_config()
    config = flagstaff.Config.from_json(config_json)
    table = users(args.users)
    evaluations = args.users * 10
    one = best_rate(lambda: evaluate_table(config, table, threads=1), evaluations, args.repeats)
    two = best_rate(lambda: evaluate_table(config, table, threads=2), evaluations, args.repeats)
    theirs = configcat_rate(config_json, table, args.sample)

    print(f"{args.users:,} users x 10 flags, SHA-1: "
          f"{flagstaff.core._core.sha1_implementation()}, {os.cpu_count()} cores")
    print()
    print("| evaluator | flag evaluations per second | vs configcat-client |")
    print("| --- | ---: | ---: |")
    print(f"| flagstaff, 1 thread | {one:,.0f} | {one / theirs:,.0f}x |")
    print(f"| flagstaff, 2 threads | {two:,.0f} | {two / theirs:,.0f}x |")
    print(f"| configcat-client per-user loop ({args.sample:,} users) | {theirs:,.0f} | 1x |")
    print()
    print(f"two threads / one: {two / one:.2f}x")

    missed = []
    if one < 10_000_000:
        missed.append("one thread below 10 million per second")
    if two < 1.7 * one:
        missed.append("two threads below 1.7x one thread")
    for line in missed:
        print(f"missed: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
