"""
The readout from Amplitude events: seconds to read a million events (a
third exposures with repeats, a third identifies, a third conversions and
other events) as a list of HTTP V2 dicts, and as Export API lines in a
.jsonl and a .json.gz file, with and without a ``where`` on the user's plan.

Usage::

    python benchmarks/readout_events.py [--events 1000000]
"""

import argparse
import gzip
import json
import os
import random
import tempfile
import time

from flagstaff.experiment import readout_from_events

FLAG = "onboardingFeature"
VARIANTS = ("default", "feature1", "feature2", "feature3")


def _events(count: int, seed: int = 1) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    users = max(1, count // 6)
    posted, exported = [], []
    for n in range(count):
        user = f"user-{rng.randrange(users):07d}"
        when = 1_796_000_000_000 + rng.randrange(7 * 86_400_000)
        kind = n % 3
        plan = "free" if rng.random() < 0.85 else "premium"
        if kind == 0:
            variant = VARIANTS[hash(user) % 4]
            posted.append({"event_type": "$exposure", "user_id": user, "time": when,
                           "event_properties": {"flag_key": FLAG, "variant": variant,
                                                "variation_id": "v1"}})
            exported.append({"event_type": "[Experiment] Exposure", "event_properties":
                             {"[Experiment] Flag Key": FLAG,
                              "[Experiment] Variant": variant}})
        elif kind == 1:
            posted.append({"event_type": "$identify", "user_id": user, "time": when,
                           "user_properties": {"$set": {"plan": plan}}})
            exported.append({"event_type": "$identify", "event_properties": {}})
        else:
            event_type = "Subscribed to Premium" if rng.random() < 0.3 else "Viewed"
            posted.append({"event_type": event_type, "user_id": user, "time": when})
            exported.append({"event_type": event_type, "event_properties": {}})
        moment = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when / 1000))
        exported[-1].update(
            user_id=user, event_time=f"{moment}.{when % 1000:03d}000",
            amplitude_id=rng.randrange(10**9), device_id=f"device-{user}",
            uuid=f"{n:032x}", server_upload_time=moment, platform="Web",
            os_name="Chrome", country="Netherlands", city="Utrecht", data={},
            user_properties={"plan": plan, "initial_referrer": "https://example.com",
                             f"[Experiment] {FLAG}": "feature1"},
        )
    return posted, exported


def _timed(label: str, events, where) -> None:
    began = time.perf_counter()
    readout_from_events(events, FLAG, where=where)
    print(f"{label:<34} {time.perf_counter() - began:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--events", type=int, default=1_000_000)
    count = parser.parse_args().events
    posted, exported = _events(count)
    with tempfile.TemporaryDirectory() as folder:
        lines = os.path.join(folder, "export.jsonl")
        with open(lines, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(event) + "\n" for event in exported)
        zipped = os.path.join(folder, "export.json.gz")
        with open(lines, "rb") as raw, gzip.open(zipped, "wb", compresslevel=6) as out:
            out.write(raw.read())
        print(f"{count:,} events; export {os.path.getsize(lines) / 1e6:,.0f} MB, "
              f"gzipped {os.path.getsize(zipped) / 1e6:,.0f} MB")
        for where in (None, {"plan": "free"}):
            suffix = "" if where is None else ", where plan"
            _timed(f"HTTP V2 dicts{suffix}", posted, where)
            _timed(f"export .jsonl{suffix}", lines, where)
            _timed(f"export .json.gz{suffix}", zipped, where)


if __name__ == "__main__":
    main()
