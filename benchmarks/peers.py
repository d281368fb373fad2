"""
Per-call evaluation time of flagstaff beside the other Python feature-flag
SDKs that evaluate locally, on the same targeting, in one run.

Every SDK gets the onboarding story's flag in its own terms: users whose
custom attribute ``plan`` is ``free`` get an even four-way percentage split
over ``default``, ``feature1``, ``feature2`` and ``feature3``, keyed by the
user id; everyone else gets ``default``. Before anything is timed, each SDK
evaluates the whole population and must serve that: premium users always
``default``, each variant 25 % of the free users within 3 points. The script
exits with 1 when an SDK does not, or when anything tried the network (every
connection and name lookup is refused and recorded while the SDKs run).

Two figures per SDK, both in ns per call:

* evaluate: the SDK's user or context object is built before timing, so only
  the evaluation call is timed;
* with user creation: the user object is built inside the timed loop, as a
  web request that evaluates once per request pays for it.

The population is evaluated in batches of ``BATCH`` calls timed with
``time.perf_counter_ns``; median and p99 are over those batches (each a mean
of ``BATCH`` calls), from ``--rounds`` passes over the population after a
warm-up, the SDKs interleaved round by round. An SDK that is not installed
is skipped with a line saying so (``make bench-peers`` installs them all).

Usage::

    python benchmarks/peers.py [--users 10000] [--rounds 10] [--json OUT]
"""

import argparse
import asyncio
import errno
import gc
import json
import logging
import math
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from importlib import metadata, resources
from pathlib import Path

import flagstaff

KEY = "onboardingFeature"
VARIANTS = ("default", "feature1", "feature2", "feature3")
TOLERANCE = 0.03
BATCH = 100
WARM_UP_CALLS = 2_000

ONBOARDING_JSON = (
    resources.files("flagstaff").joinpath("examples", "onboarding.json").read_text()
)


def population(count):
    """
    The benchmark's users as ``(identifier, plan)`` rows, half on each plan.

    :param count: how many users.
    :return: a list of ``(identifier, plan)`` tuples.
    """
    return [
        (f"user-{i:06d}", "free" if i % 2 == 0 else "premium") for i in range(count)
    ]


class NetworkGuard:
    """
    Refuses every outgoing connection and name lookup, and remembers which
    SDK's phase it happened in, so that a retry loop can neither slow the
    measurement unseen nor wait on a timeout.

    It patches ``socket.socket`` and ``socket.getaddrinfo``, which the SDKs'
    HTTP stacks (requests, urllib3, httpx, aiohttp) all go through; a native
    library opening sockets of its own would pass unseen.
    """

    def __init__(self):
        self.phase = "setup"
        self.attempts = []
        self._saved = {}

    def install(self):
        guard = self

        def connect(sock, address):
            if sock.family == socket.AF_UNIX:
                return guard._saved["connect"](sock, address)
            guard._refuse(f"connect {address!r}")

        def connect_ex(sock, address):
            if sock.family == socket.AF_UNIX:
                return guard._saved["connect_ex"](sock, address)
            guard._refuse(f"connect_ex {address!r}")

        def getaddrinfo(host, port, *args, **kwargs):
            guard._refuse(f"getaddrinfo {host!r}:{port!r}")

        self._saved = {
            "connect": socket.socket.connect,
            "connect_ex": socket.socket.connect_ex,
            "getaddrinfo": socket.getaddrinfo,
        }
        socket.socket.connect = connect
        socket.socket.connect_ex = connect_ex
        socket.getaddrinfo = getaddrinfo

    def uninstall(self):
        socket.socket.connect = self._saved["connect"]
        socket.socket.connect_ex = self._saved["connect_ex"]
        socket.getaddrinfo = self._saved["getaddrinfo"]

    def _refuse(self, what):
        self.attempts.append((self.phase, what))
        raise OSError(errno.ENETUNREACH, f"peers.py allows no network: {what}")


class Peer:
    """
    One SDK: how it is set up offline, its user object, its evaluation.

    ``evaluate`` and ``create_and_evaluate`` are the timed loops, written out
    per SDK as an application would call it, with no wrapper in between.
    """

    name = ""
    distribution = ""

    def version(self):
        return metadata.version(self.distribution)

    def open(self, folder):
        """Builds the client from local data in `folder`; imports the SDK."""
        raise NotImplementedError

    def close(self):
        pass

    def user(self, identifier, plan):
        """The SDK's user or context object."""
        raise NotImplementedError

    def value(self, user):
        """The flag's value for `user`, as text."""
        raise NotImplementedError

    def evaluate(self, users):
        raise NotImplementedError

    def create_and_evaluate(self, rows):
        raise NotImplementedError


class Flagstaff(Peer):
    name = "flagstaff"
    distribution = "flagstaff"

    def open(self, folder):
        self.config = flagstaff.Config.from_json(ONBOARDING_JSON)

    def user(self, identifier, plan):
        return flagstaff.User(identifier, custom={"plan": plan})

    def value(self, user):
        return self.config.get_value(KEY, "default", user)

    def evaluate(self, users):
        get_value = self.config.get_value
        for user in users:
            get_value(KEY, "default", user)

    def create_and_evaluate(self, rows):
        get_value, User = self.config.get_value, flagstaff.User
        for identifier, plan in rows:
            get_value(KEY, "default", User(identifier, custom={"plan": plan}))


class OpenFeatureFlagstaff(Peer):
    # OpenFeature's sync client over flagstaff's provider, which evaluates the
    # config its flagstaff.Client holds (read from a local file, LOCAL_ONLY).
    name = "OpenFeature + FlagstaffProvider"
    distribution = "openfeature-sdk"

    def version(self):
        return f"{metadata.version('openfeature-sdk')} (flagstaff provider)"

    def open(self, folder):
        from openfeature import api
        from openfeature.evaluation_context import EvaluationContext

        from flagstaff.openfeature import FlagstaffProvider

        path = folder / "onboarding.json"
        path.write_text(ONBOARDING_JSON, encoding="utf-8")
        self._context_type = EvaluationContext
        self._loop = asyncio.new_event_loop()
        self._closing = asyncio.Event()
        entered = asyncio.Event()
        held = {}

        async def host():
            # The client is entered and left in this one task; between the
            # two the loop stands still and sync resolution reads its config.
            local_only = flagstaff.OverrideBehaviour.LOCAL_ONLY
            overrides = flagstaff.FlagOverrides(path, local_only)
            async with flagstaff.Client(
                "flagstaff-peers-benchmark",
                polling=flagstaff.ManualPoll(),
                overrides=overrides,
            ) as client:
                held["client"] = client
                entered.set()
                await self._closing.wait()

        self._task = self._loop.create_task(host())
        waiting = self._loop.create_task(entered.wait())
        self._loop.run_until_complete(
            asyncio.wait({self._task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        )
        if self._task.done():
            waiting.cancel()
            self._task.result()
        self._api = api
        api.set_provider_and_wait(FlagstaffProvider(client=held["client"]))
        self.client = api.get_client()

    def close(self):
        self._api.shutdown()
        self._closing.set()
        self._loop.run_until_complete(self._task)
        self._loop.close()

    def user(self, identifier, plan):
        return self._context_type(identifier, {"plan": plan})

    def value(self, context):
        return self.client.get_string_value(KEY, "default", context)

    def evaluate(self, contexts):
        get_string_value = self.client.get_string_value
        for context in contexts:
            get_string_value(KEY, "default", context)

    def create_and_evaluate(self, rows):
        get_string_value, Context = self.client.get_string_value, self._context_type
        for identifier, plan in rows:
            get_string_value(KEY, "default", Context(identifier, {"plan": plan}))


class ConfigCat(Peer):
    # As benchmarks/conftest.py does it: the same config_v6 file through
    # LocalFileFlagOverrides with LOCAL_ONLY, manual polling. That path stats
    # the file at every evaluation.
    name = "configcat-client"
    distribution = "configcat-client"

    def open(self, folder):
        import configcatclient
        from configcatclient.localfiledatasource import LocalFileFlagOverrides
        from configcatclient.overridedatasource import OverrideBehaviour
        from configcatclient.user import User

        logging.getLogger("configcat").setLevel(logging.CRITICAL)
        path = folder / "configcat.json"
        path.write_text(ONBOARDING_JSON, encoding="utf-8")
        options = configcatclient.ConfigCatOptions(
            polling_mode=configcatclient.PollingMode.manual_poll(),
            flag_overrides=LocalFileFlagOverrides(
                file_path=os.fspath(path),
                override_behaviour=OverrideBehaviour.LocalOnly,
            ),
        )
        self.client = configcatclient.get("flagstaff-benchmarks/peers", options)
        self._user_type = User

    def close(self):
        self.client.close()

    def user(self, identifier, plan):
        return self._user_type(identifier, custom={"plan": plan})

    def value(self, user):
        return self.client.get_value(KEY, "default", user)

    def evaluate(self, users):
        get_value = self.client.get_value
        for user in users:
            get_value(KEY, "default", user)

    def create_and_evaluate(self, rows):
        get_value, User = self.client.get_value, self._user_type
        for identifier, plan in rows:
            get_value(KEY, "default", User(identifier, custom={"plan": plan}))


LAUNCHDARKLY_FLAG = {
    "key": KEY,
    "version": 1,
    "on": True,
    "variations": list(VARIANTS),
    "offVariation": 0,
    "fallthrough": {"variation": 0},
    "targets": [],
    "prerequisites": [],
    "rules": [
        {
            "id": "free-plan",
            "clauses": [
                {"attribute": "plan", "op": "in", "values": ["free"], "negate": False}
            ],
            "rollout": {
                "bucketBy": "key",
                "variations": [
                    {"variation": index, "weight": 25_000}
                    for index in range(len(VARIANTS))
                ],
            },
        }
    ],
    "salt": "onboarding-peers-salt",
    "trackEvents": False,
    "trackEventsFallthrough": False,
}


class LaunchDarkly(Peer):
    # A flag in LaunchDarkly's own data model, read by the file data source
    # (no streaming or polling), with analytics events off.
    name = "launchdarkly-server-sdk"
    distribution = "launchdarkly-server-sdk"

    def open(self, folder):
        from ldclient.client import LDClient
        from ldclient.config import Config
        from ldclient.context import Context
        from ldclient.integrations import Files

        path = folder / "launchdarkly.json"
        path.write_text(
            json.dumps({"flags": {KEY: LAUNCHDARKLY_FLAG}}), encoding="utf-8"
        )
        config = Config(
            "sdk-offline-benchmark",
            update_processor_class=Files.new_data_source(paths=[os.fspath(path)]),
            send_events=False,
            diagnostic_opt_out=True,
        )
        self.client = LDClient(config=config)
        if not self.client.is_initialized():
            raise RuntimeError("the LaunchDarkly client did not load its flag file")
        self._context_type = Context

    def close(self):
        self.client.close()

    def user(self, identifier, plan):
        return self._context_type.builder(identifier).set("plan", plan).build()

    def value(self, context):
        return self.client.variation(KEY, context, "default")

    def evaluate(self, contexts):
        variation = self.client.variation
        for context in contexts:
            variation(KEY, context, "default")

    def create_and_evaluate(self, rows):
        variation, builder = self.client.variation, self._context_type.builder
        for identifier, plan in rows:
            variation(KEY, builder(identifier).set("plan", plan).build(), "default")


GROWTHBOOK_FEATURES = {
    KEY: {
        "defaultValue": "default",
        "rules": [
            {
                "key": "onboarding-split",
                "seed": "onboarding-split",
                "condition": {"plan": "free"},
                "variations": list(VARIANTS),
                "weights": [0.25] * len(VARIANTS),
                "hashAttribute": "id",
                "hashVersion": 2,
            }
        ],
    }
}


class GrowthBookPeer(Peer):
    # GrowthBook's sync SDK carries the user's attributes in the GrowthBook
    # instance, so that instance is the user object (one per request, as
    # its docs do it). The features are parsed into Feature objects once and
    # shared, which spares every instance the parsing of the JSON.
    name = "growthbook"
    distribution = "growthbook"

    def open(self, folder):
        from growthbook import GrowthBook
        from growthbook.common_types import Feature

        self._growthbook_type = GrowthBook
        self.features = {
            key: Feature(rules=feature["rules"], defaultValue=feature["defaultValue"])
            for key, feature in GROWTHBOOK_FEATURES.items()
        }

    def user(self, identifier, plan):
        attributes = {"id": identifier, "plan": plan}
        return self._growthbook_type(attributes=attributes, features=self.features)

    def value(self, growthbook):
        return growthbook.get_feature_value(KEY, "default")

    def evaluate(self, instances):
        for growthbook in instances:
            growthbook.get_feature_value(KEY, "default")

    def create_and_evaluate(self, rows):
        GrowthBook, features = self._growthbook_type, self.features
        for identifier, plan in rows:
            attributes = {"id": identifier, "plan": plan}
            growthbook = GrowthBook(attributes=attributes, features=features)
            growthbook.get_feature_value(KEY, "default")


UNLEASH_FEATURES = {
    "version": 2,
    "features": [
        {
            "name": KEY,
            "type": "experiment",
            "enabled": True,
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {
                        "rollout": "100",
                        "stickiness": "userId",
                        "groupId": KEY,
                    },
                    "constraints": [
                        {
                            "contextName": "plan",
                            "operator": "IN",
                            "values": ["free"],
                            "inverted": False,
                            "caseInsensitive": False,
                        }
                    ],
                    "variants": [
                        {
                            "name": name,
                            "weight": 250,
                            "weightType": "variable",
                            "stickiness": "userId",
                        }
                        for name in VARIANTS
                    ],
                }
            ],
        }
    ],
}


class Unleash(Peer):
    # Bootstrapped from a features document held in memory, started with
    # fetch_toggles=False (the offline connector), no metrics and no
    # registration. The free-plan strategy carries the four variants; for
    # anyone else the toggle is off and the caller serves "default".
    name = "UnleashClient"
    distribution = "UnleashClient"

    def open(self, folder):
        from UnleashClient import UnleashClient
        from UnleashClient.cache import BaseCache
        from UnleashClient.constants import FEATURES_URL
        from UnleashClient.utils import InstanceAllowType

        class MemoryCache(BaseCache):
            # The default cache writes to the user's cache folder; this one
            # keeps the bootstrap document in a dict.
            def __init__(self):
                self._values = {}

            def set(self, key, value):
                self._values[key] = value

            def mset(self, data):
                self._values.update(data)

            def get(self, key, default=None):
                return self._values.get(key, default)

            def exists(self, key):
                return key in self._values

            def destroy(self):
                self._values.clear()

        cache = MemoryCache()
        cache.set(FEATURES_URL, json.dumps(UNLEASH_FEATURES))
        cache.bootstrapped = True
        self.client = UnleashClient(
            url="http://127.0.0.1:9/api",
            app_name="flagstaff-peers-benchmark",
            disable_metrics=True,
            disable_registration=True,
            refresh_interval=3600,
            cache=cache,
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        )
        self.client.initialize_client(fetch_toggles=False)

    def close(self):
        self.client.destroy()

    def user(self, identifier, plan):
        return {"userId": identifier, "properties": {"plan": plan}}

    def value(self, context):
        variant = self.client.get_variant(KEY, context)
        return variant["name"] if variant["enabled"] else "default"

    def evaluate(self, contexts):
        get_variant = self.client.get_variant
        for context in contexts:
            variant = get_variant(KEY, context)
            variant["name"] if variant["enabled"] else "default"

    def create_and_evaluate(self, rows):
        get_variant = self.client.get_variant
        for identifier, plan in rows:
            context = {"userId": identifier, "properties": {"plan": plan}}
            variant = get_variant(KEY, context)
            variant["name"] if variant["enabled"] else "default"


FLAGSMITH_FEATURE = {"id": 1, "name": KEY, "type": "MULTIVARIATE"}
FLAGSMITH_DOCUMENT = {
    "api_key": "offline-peers-benchmark",
    "name": "benchmark",
    "feature_states": [
        {
            "feature": FLAGSMITH_FEATURE,
            "enabled": True,
            "feature_state_value": "default",
            "django_id": 101,
            "multivariate_feature_state_values": [],
        }
    ],
    "project": {
        "segments": [
            {
                "id": 1,
                "name": "Free plan",
                "rules": [
                    {
                        "type": "ALL",
                        "conditions": [],
                        "rules": [
                            {
                                "type": "ANY",
                                "conditions": [
                                    {
                                        "operator": "EQUAL",
                                        "property_": "plan",
                                        "value": "free",
                                    }
                                ],
                                "rules": [],
                            }
                        ],
                    }
                ],
                "feature_states": [
                    {
                        "feature": FLAGSMITH_FEATURE,
                        "enabled": True,
                        "feature_state_value": "default",
                        "django_id": 102,
                        "feature_segment": {"priority": 0},
                        "multivariate_feature_state_values": [
                            {
                                "id": 200 + index,
                                "percentage_allocation": 25,
                                "multivariate_feature_option": {"value": value},
                            }
                            for index, value in enumerate(VARIANTS[1:], 1)
                        ],
                    }
                ],
            }
        ]
    },
}


class Flagsmith(Peer):
    # offline_mode with an environment document from a local file: segment
    # "Free plan" (plan EQUAL free) overrides the flag with three 25 %
    # multivariate options, the control value "default" keeping the rest.
    # Flagsmith has no user object: the identity is an identifier and a dict
    # of traits, evaluated by get_identity_flags.
    name = "flagsmith"
    distribution = "flagsmith"

    def open(self, folder):
        from flagsmith import Flagsmith
        from flagsmith.offline_handlers import LocalFileHandler

        path = folder / "flagsmith.json"
        path.write_text(json.dumps(FLAGSMITH_DOCUMENT), encoding="utf-8")
        self.client = Flagsmith(
            offline_mode=True, offline_handler=LocalFileHandler(os.fspath(path))
        )

    def user(self, identifier, plan):
        return identifier, {"plan": plan}

    def value(self, identity):
        identifier, traits = identity
        return self.client.get_identity_flags(identifier, traits).get_feature_value(KEY)

    def evaluate(self, identities):
        get_identity_flags = self.client.get_identity_flags
        for identifier, traits in identities:
            get_identity_flags(identifier, traits).get_feature_value(KEY)

    def create_and_evaluate(self, rows):
        get_identity_flags = self.client.get_identity_flags
        for identifier, plan in rows:
            get_identity_flags(identifier, {"plan": plan}).get_feature_value(KEY)


PEERS = (
    Flagstaff,
    OpenFeatureFlagstaff,
    ConfigCat,
    LaunchDarkly,
    GrowthBookPeer,
    Unleash,
    Flagsmith,
)


def check_targeting(name, rows, values):
    """
    The reasons `values` are not the benchmark's targeting, if any.

    :param name: the SDK, for the messages.
    :param rows: the ``(identifier, plan)`` rows.
    :param values: each row's value, in order.
    :return: a list of messages, empty when the SDK serves the targeting.
    """
    problems = []
    premium = Counter(v for (_, plan), v in zip(rows, values) if plan != "free")
    free = Counter(v for (_, plan), v in zip(rows, values) if plan == "free")
    if set(premium) != {"default"}:
        problems.append(
            f"{name}: premium users got {dict(premium)}, not only 'default'"
        )
    unknown = set(free) - set(VARIANTS)
    if unknown:
        problems.append(f"{name}: free users got unknown values {sorted(unknown)}")
    total = sum(free.values())
    for variant in VARIANTS:
        share = free[variant] / total if total else 0.0
        if abs(share - 1 / len(VARIANTS)) > TOLERANCE:
            problems.append(
                f"{name}: {share:.1%} of free users got {variant!r}, "
                f"not 25 % +- {TOLERANCE:.0%}"
            )
    return problems


def batched(items, size):
    return [items[start : start + size] for start in range(0, len(items), size)]


def time_batches(loop, batches, samples):
    """
    Runs `loop` over each batch and appends its ns per call to `samples`.
    """
    clock = time.perf_counter_ns
    for batch in batches:
        started = clock()
        loop(batch)
        samples.append((clock() - started) / len(batch))


def summary(samples):
    ordered = sorted(samples)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "median_ns": statistics.median(ordered),
        "p99_ns": p99,
        "batches": len(ordered),
    }


def format_ns(ns):
    return f"{ns:,.0f}"


def table(results):
    """The Markdown table of the results, flagstaff's row first."""
    base = next((r for r in results if r["sdk"] == Flagstaff.name), None)
    rows = [
        (
            "| SDK | version | ns/call median | p99 | vs flagstaff "
            "| with user creation: median | p99 | vs flagstaff |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        cells = [result["sdk"], result["version"]]
        for figure in ("evaluate", "create_and_evaluate"):
            stats = result[figure]
            cells += [format_ns(stats["median_ns"]), format_ns(stats["p99_ns"])]
            if base is None:
                cells.append("-")
            else:
                ratio = stats["median_ns"] / base[figure]["median_ns"]
                cells.append(f"{ratio:.1f}x")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def open_peers(guard, folder, rows):
    """
    Opens every installed SDK and checks it serves the targeting.

    :return: ``(opened, skipped, problems)``: a list of ``(peer, users)``,
        the skip lines, the targeting problems.
    """
    opened, skipped, problems = [], [], []
    reference = None
    for peer_type in PEERS:
        peer = peer_type()
        guard.phase = peer.name
        try:
            peer.open(folder)
        except ImportError as exc:
            skipped.append(
                f"skipped {peer.name}: not installed ({exc}); "
                "`make bench-peers` installs it"
            )
            continue
        users = [peer.user(identifier, plan) for identifier, plan in rows]
        values = [peer.value(user) for user in users]
        problems += check_targeting(peer.name, rows, values)
        # flagstaff, its OpenFeature layer and configcat-client read the very
        # same config and hash alike: they must agree user by user.
        if peer.name in (Flagstaff.name, OpenFeatureFlagstaff.name, ConfigCat.name):
            if reference is None:
                reference = (peer.name, values)
            elif values != reference[1]:
                problems.append(f"{peer.name}: values differ from {reference[0]}'s")
        opened.append((peer, users))
    return opened, skipped, problems


def measure(guard, opened, rows, rounds):
    """
    Times every opened SDK, both figures, interleaved round by round.

    :return: ``{name: {"evaluate": samples, "create_and_evaluate": samples}}``.
    """
    row_batches = batched(rows, BATCH)
    # The populations (10,000 GrowthBook instances among them) live through
    # the whole run: frozen, the cyclic collector no longer walks them during
    # another SDK's timed loop.
    gc.collect()
    gc.freeze()
    samples = {}
    for peer, users in opened:
        guard.phase = peer.name
        peer.evaluate(users[:WARM_UP_CALLS])
        peer.create_and_evaluate(rows[:WARM_UP_CALLS])
        samples[peer.name] = {"evaluate": [], "create_and_evaluate": []}
    user_batches = {peer.name: batched(users, BATCH) for peer, users in opened}
    for number in range(rounds):
        # Each round starts with another SDK, so that none always runs
        # right after the same neighbour.
        shift = number % len(opened)
        for peer, _ in opened[shift:] + opened[:shift]:
            guard.phase = peer.name
            gc.collect()
            time_batches(
                peer.evaluate, user_batches[peer.name], samples[peer.name]["evaluate"]
            )
            gc.collect()
            time_batches(
                peer.create_and_evaluate,
                row_batches,
                samples[peer.name]["create_and_evaluate"],
            )
    gc.unfreeze()
    return samples


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--users",
        type=int,
        default=10_000,
        help="users in the population (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="timed passes over the population (default: %(default)s)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="OUT", help="also write the results as JSON to OUT"
    )
    args = parser.parse_args(argv)
    # Below 10,000 users (5,000 on the free plan) a 3-point band around 25 %
    # is under three standard deviations wide: the check would fail by chance.
    if not 10_000 <= args.users <= 200_000 or not 1 <= args.rounds <= 50:
        parser.error("--users is 10000 to 200000 and --rounds 1 to 50")

    logging.basicConfig(
        level=logging.WARNING, format="log: %(name)s %(levelname)s %(message)s"
    )
    rows = population(args.users)
    guard = NetworkGuard()
    guard.install()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            opened, skipped, problems = open_peers(guard, Path(scratch), rows)
            samples = {}
            try:
                if not problems:
                    samples = measure(guard, opened, rows, args.rounds)
            finally:
                for peer, _ in opened:
                    guard.phase = f"{peer.name} (closing)"
                    peer.close()
    finally:
        guard.uninstall()

    for line in skipped:
        print(line)
    if problems:
        print("not like with like, nothing timed:")
        for line in problems:
            print(f"  {line}")
        return 1

    results = [
        {
            "sdk": peer.name,
            "version": peer.version(),
            **{
                figure: summary(values) for figure, values in samples[peer.name].items()
            },
        }
        for peer, _ in opened
    ]
    print(
        f"{args.users:,} users (half on the free plan) x {args.rounds} rounds, "
        f"batches of {BATCH} calls; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, {time.monotonic() - started:.0f} s"
    )
    print()
    print(table(results))
    print()
    print(
        "Every SDK served the targeting: premium users 'default', free users "
        f"25 % per variant +- {TOLERANCE:.0%}."
    )
    if guard.attempts:
        print("network attempts (refused):")
        for phase, what in guard.attempts:
            print(f"  {phase}: {what}")
    else:
        print("No SDK tried the network (connections and name lookups were refused).")

    if args.json:
        report = {
            "users": args.users,
            "rounds": args.rounds,
            "batch": BATCH,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "results": results,
            "skipped": skipped,
            "network_attempts": [list(attempt) for attempt in guard.attempts],
        }
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 1 if guard.attempts else 0


if __name__ == "__main__":
    sys.exit(main())
