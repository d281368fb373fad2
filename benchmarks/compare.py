"""
Run the evaluation benchmarks and compare flagstaff with configcat-client.

Prints, per benchmark group, the median time per call of each library and the
ratio configcat-client / flagstaff as a Markdown table. Exits with 1 when a
gated group's ratio is below its target: flagstaff's config is at least 20
times faster per call on the percentage and the rule groups, and its async
client at least 10 times. The ratio is the measure; absolute times depend on
the machine.

Usage::

    python benchmarks/compare.py [--json PATH] [-- PYTEST_ARGS]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent

OURS = "flagstaff"
THEIRS = "configcat-client"

# Groups in the order they are reported, with the least ratio each must
# reach (None: reported, not gated).
GROUPS = {
    "percentage-4x25": 20,
    "rule-plan-split": 20,
    "client-get-value": 10,
    "all-values-testmatrix": None,
}


def run_suite(json_path, pytest_args):
    """
    Run the benchmark suite, writing pytest-benchmark's JSON report.

    :param json_path: where the report goes.
    :param pytest_args: further arguments for pytest.
    :return: pytest's exit code.
    """
    command = [
        sys.executable,
        "-m",
        "pytest",
        os.fspath(BENCHMARKS_DIR),
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        "--benchmark-columns=min,median,iqr,rounds",
        "-q",
        *pytest_args,
    ]
    print("$", " ".join(command), file=sys.stderr, flush=True)
    return subprocess.call(command, cwd=REPO_ROOT)


def medians_per_call(report):
    """
    The median time per call of each library in each group.

    :param report: pytest-benchmark's JSON report, decoded.
    :return: ``{group: {library: seconds}}``.
    """
    medians = {}
    for bench in report["benchmarks"]:
        extra = bench.get("extra_info", {})
        library = extra.get("library")
        if library is None:
            library = THEIRS if bench["name"].endswith("_configcat") else OURS
        calls = extra.get("calls_per_round", 1)
        median = bench["stats"]["median"] / calls
        medians.setdefault(bench["group"], {})[library] = median
    return medians


def format_time(seconds):
    """
    A duration in the unit that keeps it between 1 and 1000.

    :param seconds: the duration.
    :return: the duration in ns, us, ms or s.
    """
    for unit, scale in (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3)):
        if seconds < scale * 1000:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def compare(medians):
    """
    The Markdown table of the groups, and the gated groups that missed.

    :param medians: ``{group: {library: seconds}}``.
    :return: ``(table, missed)``, the table's text and a list of group names.
    """
    rows = [
        f"| group | {OURS} | {THEIRS} | {THEIRS} / {OURS} | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    missed = []
    others = sorted(set(medians) - set(GROUPS))
    for group in [*GROUPS, *others]:
        target = GROUPS.get(group)
        sides = medians.get(group, {})
        if OURS not in sides or THEIRS not in sides:
            if target is not None:
                missed.append(group)
            rows.append(f"| {group} | - | - | - | missing |")
            continue

        ratio = sides[THEIRS] / sides[OURS]
        if target is None:
            verdict = "not gated"
        elif ratio >= target:
            verdict = f">= {target:g}x: met"
        else:
            verdict = f">= {target:g}x: **missed**"
            missed.append(group)
        ours, theirs = format_time(sides[OURS]), format_time(sides[THEIRS])
        rows.append(f"| {group} | {ours} | {theirs} | {ratio:.1f}x | {verdict} |")
    return "\n".join(rows), missed


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Benchmark flagstaff against configcat-client per group.",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="keep pytest-benchmark's JSON report at this path",
    )
    parser.add_argument(
        "pytest_args",
        nargs="*",
        help="further pytest arguments, after '--' "
        "(e.g. -- --benchmark-min-rounds=10)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        json_path = args.json or Path(scratch) / "benchmarks.json"
        code = run_suite(json_path, args.pytest_args)
        if code != 0:
            print(f"the benchmark run failed (pytest exit code {code})")
            return code
        report = json.loads(Path(json_path).read_text(encoding="utf-8"))

    table, missed = compare(medians_per_call(report))
    print()
    print("Median time per call (a round evaluates every prebuilt user once).")
    print()
    print(table)
    if missed:
        print()
        print(f"below target: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
