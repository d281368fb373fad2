"""
Evaluation speed, flagstaff beside configcat-client, one group per workload.

Each timed round evaluates once for each of the 1,000 prebuilt users, in the
same fixed order for both libraries; ``extra_info["calls_per_round"]`` says
how many calls a round holds, so that ``compare.py`` reports time per call.
Configs, clients and users are built in fixtures and checked to give the
same values in both libraries before anything is timed.

Groups:

* ``percentage-4x25``: a string flag with four 25 % percentage options.
* ``rule-plan-split``: ``plan IS ONE OF ['free']`` serves a 34/33/33 split;
  everyone else gets the default value. Half the users are on the free plan.
* ``all-values-testmatrix``: ``get_all_values`` over ConfigCat's testmatrix
  config (16 settings).
"""

import pytest

import flagstaff
from workloads import PERCENTAGE_KEY, PLAN_SPLIT_KEY


@pytest.fixture(scope="module")
def testmatrix(testmatrix_json, configcat_client, flagstaff_users, configcat_users):
    """The testmatrix config in each library, checked to agree."""
    config = flagstaff.Config.from_json(testmatrix_json)
    client = configcat_client("testmatrix", testmatrix_json)
    pairs = zip(flagstaff_users, configcat_users)
    for ours, theirs in pairs:
        assert config.get_all_values(ours) == client.get_all_values(theirs)
    return config, client


def _run_get_value(benchmark, library, get_value, key, users):
    def evaluate_all():
        for user in users:
            get_value(key, "default", user)

    benchmark.extra_info.update(library=library, calls_per_round=len(users))
    benchmark(evaluate_all)


def _run_get_all_values(benchmark, library, get_all_values, users):
    def evaluate_all():
        for user in users:
            get_all_values(user)

    benchmark.extra_info.update(library=library, calls_per_round=len(users))
    benchmark(evaluate_all)


@pytest.mark.benchmark(group="percentage-4x25")
def test_percentage_flagstaff(benchmark, onboarding, flagstaff_users):
    config, _ = onboarding
    _run_get_value(
        benchmark, "flagstaff", config.get_value, PERCENTAGE_KEY, flagstaff_users
    )


@pytest.mark.benchmark(group="percentage-4x25")
def test_percentage_configcat(benchmark, onboarding, configcat_users):
    _, client = onboarding
    _run_get_value(
        benchmark, "configcat-client", client.get_value, PERCENTAGE_KEY, configcat_users
    )


@pytest.mark.benchmark(group="rule-plan-split")
def test_plan_split_flagstaff(benchmark, onboarding, flagstaff_users):
    config, _ = onboarding
    _run_get_value(
        benchmark, "flagstaff", config.get_value, PLAN_SPLIT_KEY, flagstaff_users
    )


@pytest.mark.benchmark(group="rule-plan-split")
def test_plan_split_configcat(benchmark, onboarding, configcat_users):
    _, client = onboarding
    _run_get_value(
        benchmark, "configcat-client", client.get_value, PLAN_SPLIT_KEY, configcat_users
    )


@pytest.mark.benchmark(group="all-values-testmatrix")
def test_all_values_flagstaff(benchmark, testmatrix, flagstaff_users):
    config, _ = testmatrix
    _run_get_all_values(benchmark, "flagstaff", config.get_all_values, flagstaff_users)


@pytest.mark.benchmark(group="all-values-testmatrix")
def test_all_values_configcat(benchmark, testmatrix, configcat_users):
    _, client = testmatrix
    _run_get_all_values(
        benchmark, "configcat-client", client.get_all_values, configcat_users
    )
