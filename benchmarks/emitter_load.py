"""
The Amplitude emitter under load, against the fake Amplitude of the test
suite running in its own process on 127.0.0.1.

Reports three figures and exits 1 when one misses its target:

- the cost of an enqueue: ``track()`` of a small conversion event, timed
  alone (target: at most 2 µs), and in bursts while the emitter sends;
- sustained delivery: events per second that Amplitude (the fake) answered
  2xx for, with the producer held back only by the queue's size (target: at
  least 50,000 events/s), checked against the fake's deduplicated store;
- the event loop's lag meanwhile: how late a 5 ms sleep wakes, at worst
  (target: under 50 ms).

It also prints the cost of an exposure that the dedup filter skips and of one
it lets through. Everything is bounded: ``--duration`` seconds of load, a
hard timeout, loopback only.

    python benchmarks/emitter_load.py [--backend trio] [--duration 5]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import anyio
import httpx

from flagstaff.amplitude import AmplitudeEmitter

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "amplitude" / "fake_amplitude.py"
API_KEY = "fake-amplitude-api-key-0123456789"

ENQUEUE_TARGET_US = 2.0
RATE_TARGET = 50_000
LAG_TARGET_MS = 50.0

BURST = 1000
PROPERTIES = {"purchasedTier": 2, "plan": "premium"}


def start_fake() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", "0", "--no-throttle", "--no-record"],
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"the fake Amplitude did not start: {line!r}")
    return process, line.split()[-1]


def stop_fake(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


async def fake_stats(url: str) -> dict:
    async with httpx.AsyncClient() as http:
        return (await http.get(url + "/__fake__/stats")).json()


class LagMonitor:
    """How late a short sleep wakes up, at worst."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.worst = 0.0
        self.samples: list[float] = []

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await anyio.sleep(self.period)
            late = time.perf_counter() - start - self.period
            self.samples.append(late)
            self.worst = max(self.worst, late)


def enqueue_costs(repeats: int = 25, count: int = 10_000) -> list[float]:
    """µs per ``track()`` in each of ``repeats`` runs, each into a fresh
    emitter that is not sending (so only the enqueue is timed)."""
    costs = []
    # The runs end by dropping their events: no need to hear about it.
    logging.getLogger("flagstaff.amplitude").setLevel(logging.ERROR)
    for _ in range(repeats):
        emitter = AmplitudeEmitter(API_KEY, max_queue=count, flush_at=1000)
        track = emitter.track
        users = [f"user-{i:07}" for i in range(count)]
        start = time.perf_counter()
        for user_id in users:
            track("Subscribed to Premium", user_id=user_id, event_properties=PROPERTIES)
        costs.append((time.perf_counter() - start) / count * 1e6)
        assert emitter.stats.queued == count
        anyio.run(emitter.aclose, 0.0)
    logging.getLogger("flagstaff.amplitude").setLevel(logging.NOTSET)
    return sorted(costs)


def exposure_costs(count: int) -> tuple[float, float]:
    """µs per exposure: a repeat the dedup filter skips, and a fresh one."""
    emitter = AmplitudeEmitter(API_KEY, max_queue=count + 1, max_queue_bytes=2**31)
    person = SimpleNamespace(identifier="user-00042", custom={})
    seen = SimpleNamespace(key="onboardingFeature", value="feature2", variation_id="v2",
                           is_default_value=False, error=None, user=person)
    emitter.exposure(seen)
    start = time.perf_counter()
    for _ in range(count):
        emitter.exposure(seen)
    repeat = (time.perf_counter() - start) / count * 1e6
    fresh = [
        SimpleNamespace(key="onboardingFeature", value="feature2", variation_id="v2",
                        is_default_value=False, error=None,
                        user=SimpleNamespace(identifier=f"user-{i:07}", custom={}))
        for i in range(count)
    ]
    start = time.perf_counter()
    for details in fresh:
        emitter.exposure(details)
    new = (time.perf_counter() - start) / count * 1e6
    return repeat, new


async def load(url: str, args: argparse.Namespace) -> dict:
    emitter = AmplitudeEmitter(
        API_KEY, server_url=url, flush_at=args.batch, max_batch_events=args.batch,
        max_in_flight=args.max_in_flight, max_queue=args.queue, flush_interval=0.05,
    )
    monitor = LagMonitor()
    bursts: list[float] = []
    high_water = args.queue - 2 * BURST
    track = emitter.track
    users = [f"user-{i:07}" for i in range(args.users)]
    produced = 0
    async with emitter, anyio.create_task_group() as group:
        group.start_soon(monitor.run)
        await anyio.sleep(0.05)
        start = time.perf_counter()
        until = start + args.duration
        while time.perf_counter() < until:
            stats = emitter.stats
            if stats.queued + stats.in_flight > high_water:
                await anyio.sleep(0.001)
                continue
            base = produced % args.users
            chunk = users[base:base + BURST] or users[:BURST]
            began = time.perf_counter_ns()
            for user_id in chunk:
                track("Subscribed to Premium", user_id=user_id, event_properties=PROPERTIES)
            bursts.append((time.perf_counter_ns() - began) / len(chunk) / 1000)
            produced += len(chunk)
            await anyio.sleep(0)
        with anyio.fail_after(args.duration + 60):
            await emitter.flush()
        elapsed = time.perf_counter() - start
        group.cancel_scope.cancel()
        stats = emitter.stats
    return {
        "produced": produced, "stats": stats, "elapsed": elapsed, "bursts": bursts,
        "lag_ms": monitor.worst * 1000,
        "lag_p99_ms": statistics.quantiles(monitor.samples, n=100)[98] * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds of sustained load (default 5)")
    parser.add_argument("--batch", type=int, default=1000, help="events per request")
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--queue", type=int, default=50_000, help="the emitter's max_queue")
    parser.add_argument("--users", type=int, default=100_000, help="distinct user ids")
    parser.add_argument("--exposures", type=int, default=50_000,
                        help="exposures timed for the dedup figures")
    args = parser.parse_args(argv)
    args.duration = min(max(args.duration, 0.5), 120.0)

    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} cpus, backend {args.backend}; fake Amplitude in a "
          f"subprocess on 127.0.0.1")
    costs = enqueue_costs()
    repeat, fresh = exposure_costs(args.exposures)
    gc.collect()
    process, url = start_fake()
    try:
        result = anyio.run(load, url, args, backend=args.backend)
        served = anyio.run(fake_stats, url)
    finally:
        stop_fake(process)

    stats = result["stats"]
    bursts = sorted(result["bursts"])
    enqueue = statistics.median(costs)
    loaded = statistics.median(bursts)
    rate = stats.delivered / result["elapsed"]
    lag = result["lag_ms"]
    print(f"enqueue (track)      median {enqueue:.2f} µs, best {costs[0]:.2f} µs of "
          f"{len(costs)} runs   target <= {ENQUEUE_TARGET_US} µs")
    print(f"  under load         median {loaded:.2f} µs, p90 "
          f"{bursts[int(len(bursts) * 0.9)]:.2f} µs per track in bursts of {BURST}, "
          f"while sending")
    print(f"exposure             deduplicated {repeat:.2f} µs, new {fresh:.2f} µs")
    print(f"sustained delivery   {rate:,.0f} events/s ({stats.delivered:,} events in "
          f"{result['elapsed']:.2f} s, {stats.requests:,} requests)   "
          f"target >= {RATE_TARGET:,}")
    print(f"event loop lag       worst {lag:.1f} ms, p99 {result['lag_p99_ms']:.1f} ms   "
          f"target < {LAG_TARGET_MS:.0f} ms")
    print(f"fake Amplitude       {served['ingested']:,} stored, {served['duplicates']} "
          f"duplicates, {served['requests']:,} requests")

    failures = []
    if enqueue > ENQUEUE_TARGET_US:
        failures.append("enqueue cost")
    if rate < RATE_TARGET:
        failures.append("delivery rate")
    if lag >= LAG_TARGET_MS:
        failures.append("event loop lag")
    if stats.delivered != result["produced"] or stats.dropped:
        failures.append(f"outcomes ({stats.dropped} dropped)")
    if served["ingested"] != stats.delivered or served["duplicates"]:
        failures.append("the fake's store disagrees")
    if failures:
        print("MISSED: " + ", ".join(failures))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
