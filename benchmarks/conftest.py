"""
Fixtures for benchmarking flagstaff against configcat-client, ConfigCat's
Python SDK, on the same configs and the same users.

The suite sits outside the default test run: run it with
``python benchmarks/compare.py`` or ``python -m pytest benchmarks``.

configcat-client runs offline, as its documentation suggests for local
configs: flag overrides read from a config_v6 JSON file with
``OverrideBehaviour.LocalOnly`` and ``PollingMode.manual_poll()``. Its
``configcat`` logger is held at CRITICAL for the whole session: at INFO the
SDK builds and logs an evaluation log on every call, which costs it three to
four times more. The users below carry every attribute the benchmarked
configs read, so no WARNING fires either, and the timings are the same with
the logger at WARNING.

That offline path calls ``os.stat`` on the config file at every evaluation,
to see if the file changed: a client serving its config from a cache
instead is about 1.5 us per call faster, so these ratios flatter flagstaff
by about that much.
"""

import logging
import os
from pathlib import Path

import configcatclient
import pytest

from configcatclient.localfiledatasource import LocalFileFlagOverrides
from configcatclient.overridedatasource import OverrideBehaviour
from configcatclient.user import User as ConfigCatUser

import flagstaff
from workloads import (
    PERCENTAGE_KEY,
    PLAN_SPLIT_KEY,
    check_same_values,
    onboarding_config,
)

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "configcat"

USER_COUNT = 1_000
COUNTRIES = ("Hungary", "United Kingdom", "United States", "Bahamas", "Germany")
EMAIL_DOMAINS = ("configcat.com", "example.com", "mail.test")


def pytest_ignore_collect(collection_path, config):
    # A bare ``pytest`` collects ``tests/`` only (testpaths), but falls back to
    # the whole checkout when ``tests/`` is missing: benchmarks run only when
    # a path inside this folder is named on the command line.
    for arg in config.args:
        target = Path(arg.split("::", 1)[0]).resolve()
        if target == BENCHMARKS_DIR or BENCHMARKS_DIR in target.parents:
            return None
    return True


def user_attributes(count=USER_COUNT):
    """
    The attributes of `count` users, as tuples for either library's ``User``.

    Every second user is on the free plan and the others on premium; emails,
    countries and the testmatrix's custom attributes vary so that each rule
    of the benchmarked configs both matches and misses.

    :param count: how many users to describe.
    :return: a list of ``(identifier, email, country, custom)`` tuples.
    """
    users = []
    for i in range(count):
        domain = EMAIL_DOMAINS[i % len(EMAIL_DOMAINS)]
        custom = {
            "plan": "free" if i % 2 == 0 else "premium",
            "Custom1": "admin" if i % 7 == 0 else "member",
            "SubscriptionType": "unlimited" if i % 11 == 0 else "limited",
        }
        email = f"user{i}@{domain}"
        country = COUNTRIES[i % len(COUNTRIES)]
        users.append((f"user-{i:05d}", email, country, custom))
    return users


@pytest.fixture(scope="session", autouse=True)
def _quiet_configcat():
    logger = logging.getLogger("configcat")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(previous)


@pytest.fixture(scope="session")
def attributes():
    """The attributes of the benchmark's users, shared by both libraries."""
    return user_attributes()


@pytest.fixture(scope="session")
def flagstaff_users(attributes):
    """The benchmark's users as ``flagstaff.User`` objects."""
    return [
        flagstaff.User(identifier, email=email, country=country, custom=custom)
        for identifier, email, country, custom in attributes
    ]


@pytest.fixture(scope="session")
def configcat_users(attributes):
    """The same users, in the same order, as ``configcatclient.user.User``."""
    return [
        ConfigCatUser(identifier, email, country, dict(custom))
        for identifier, email, country, custom in attributes
    ]


@pytest.fixture(scope="session")
def testmatrix_json():
    """The text of ConfigCat's testmatrix config (16 settings)."""
    path = DATA_DIR / "configs_v6" / "testmatrix.json"
    if not path.is_file():
        pytest.skip(f"ConfigCat's test data is not at {path}")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def configcat_client(tmp_path_factory):
    """
    A factory of offline configcat-client clients, each closed at teardown.

    :return: a function taking a name and a config_v6 JSON text and returning
        a ``ConfigCatClient`` that serves that config from a local file.
    """
    folder = tmp_path_factory.mktemp("configcat")
    clients = []

    def make(name, config_json):
        path = folder / f"{name}.json"
        path.write_text(config_json, encoding="utf-8")
        overrides = LocalFileFlagOverrides(
            file_path=os.fspath(path),
            override_behaviour=OverrideBehaviour.LocalOnly,
        )
        options = configcatclient.ConfigCatOptions(
            polling_mode=configcatclient.PollingMode.manual_poll(),
            flag_overrides=overrides,
        )
        client = configcatclient.get(f"flagstaff-benchmarks/{name}", options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def onboarding_json():
    return onboarding_config()


@pytest.fixture(scope="session")
def onboarding(onboarding_json, configcat_client, flagstaff_users, configcat_users):
    """Group A and B's config in each library, checked to agree."""
    config = flagstaff.Config.from_json(onboarding_json)
    client = configcat_client("onboarding", onboarding_json)
    for key in (PERCENTAGE_KEY, PLAN_SPLIT_KEY):
        check_same_values(config, client, flagstaff_users, configcat_users, key)
    return config, client
