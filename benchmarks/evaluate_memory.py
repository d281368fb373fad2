"""
Peak memory of ``flagstaff evaluate`` on 1 million and on 10 million users:
flat in the row count, bounded by the batch size.

The script writes Parquet files of users (Identifier, plan, Country) chunk by
chunk, runs ``flagstaff evaluate`` on each in a child process with the
example onboarding config (a segment of free users, a percentage split,
a rule on the plan), and reports the child's peak resident set size (its
VmHWM) with its time::

    .venv/bin/python benchmarks/evaluate_memory.py
    .venv/bin/python benchmarks/evaluate_memory.py --rows 1000000 10000000 \\
        --batch-size 16384 65536 262144
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "src" / "flagstaff" / "examples" / "onboarding.json"

PLANS = ["free", "free", "free", "premium"]
COUNTRIES = ["US", "HU", "DE", "NA", "JP", None]


def write_users(path: Path, rows: int, chunk: int, seed: int = 7) -> None:
    """Writes `rows` users to a Parquet or CSV file, `chunk` rows at a time
    (a Parquet row group each), so that writing needs no more memory than
    reading will."""
    rng = random.Random(seed)
    schema = pa.schema(
        [("Identifier", pa.string()), ("plan", pa.string()), ("Country", pa.string())]
    )
    kind = pq.ParquetWriter if path.suffix == ".parquet" else pa_csv.CSVWriter
    with kind(path, schema) as writer:
        for start in range(0, rows, chunk):
            size = min(chunk, rows - start)
            writer.write_table(
                pa.table(
                    {
                        "Identifier": [f"user-{start + i:09d}" for i in range(size)],
                        "plan": rng.choices(PLANS, k=size),
                        "Country": rng.choices(COUNTRIES, k=size),
                    },
                    schema=schema,
                )
            )


# The child runs the command, then tells its own high-water mark. VmHWM is
# that of the process's memory since exec; ru_maxrss would not do, as Linux
# carries the parent's peak at fork time over into the child's.
_CHILD = """
import sys
from flagstaff.cli import main
status = main(sys.argv[1:])
with open("/proc/self/status") as status_file:
    for line in status_file:
        if line.startswith("VmHWM:"):
            print(int(line.split()[1]) * 1024)
sys.exit(status)
"""


def run_evaluate(
    users: Path, output: Path, batch_size: int, threads: int | None
) -> tuple[float, int]:
    """Runs ``flagstaff evaluate`` in a child; returns its seconds and peak
    RSS in bytes."""
    command = [
        sys.executable,
        "-c",
        _CHILD,
        "evaluate",
        "--config",
        str(CONFIG),
        "--users",
        str(users),
        "--output",
        str(output),
        "--keep",
        "Identifier",
        "--batch-size",
        str(batch_size),
    ]
    if threads is not None:
        command += ["--threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"flagstaff evaluate failed with status {done.returncode}")
    return seconds, int(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        help="row counts to compare (default: 1M and 10M)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[65536],
        help="batch sizes to run each file with (default: 65536)",
    )
    parser.add_argument(
        "--format",
        nargs="+",
        default=["parquet"],
        choices=["parquet", "csv"],
        help="users file formats",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=1_000_000,
        help="rows per row group of the users files (Parquet "
        "readers hold one row group at a time)",
    )
    parser.add_argument("--threads", type=int, help="evaluating threads")
    parser.add_argument(
        "--folder",
        type=Path,
        help="where to write the files "
        "(default: a temporary folder, removed afterwards)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        print(
            f"{'format':<8} {'rows':>12} {'batch':>8} {'seconds':>8} {'rows/s':>12} "
            f"{'peak RSS':>10}"
        )
        results = {}
        for kind in args.format:
            for rows in args.rows:
                users = Path(folder) / f"users-{rows}.{kind}"
                write_users(users, rows, args.chunk)
                for batch_size in args.batch_size:
                    output = Path(folder) / f"out-{rows}-{batch_size}.parquet"
                    seconds, peak = run_evaluate(
                        users, output, batch_size, args.threads
                    )
                    assert pq.ParquetFile(output).metadata.num_rows == rows
                    output.unlink()
                    results[kind, rows, batch_size] = peak
                    print(
                        f"{kind:<8} {rows:>12,} {batch_size:>8,} {seconds:>8.2f} "
                        f"{rows / seconds:>12,.0f} {peak / 2**20:>7.0f} MiB",
                        flush=True,
                    )
                users.unlink()

    low, high = min(args.rows), max(args.rows)
    for kind in args.format:
        for batch_size in args.batch_size:
            ratio = results[kind, high, batch_size] / results[kind, low, batch_size]
            print(
                f"{kind}, batch {batch_size:,}: peak RSS at {high:,} rows is "
                f"{ratio:.2f} x that at {low:,} rows ({high // low} x the rows)"
            )


if __name__ == "__main__":
    main()
