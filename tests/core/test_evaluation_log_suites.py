"""
The return values of ConfigCat's evaluation-log suites (``evaluationlog/``).

The expected log texts are Python-SDK wording and flagstaff's evaluation does
not log, so only the served values are checked, against each suite's stored
local config and, where the suite names one, its ``jsonOverride`` file.
"""

import pytest

import configcat_data as data

LOCAL = data.read_json("evaluationlog/_local_configs/index.json")


def _suites():
    return sorted(p.stem for p in data.path("evaluationlog").glob("*.json"))


def _cases():
    for suite in _suites():
        descriptor = data.read_json(f"evaluationlog/{suite}.json")
        configs = [("local", LOCAL[suite]["local_config"])]
        if "jsonOverride" in descriptor:
            override = f"evaluationlog/{suite}/{descriptor['jsonOverride']}"
            configs.append(("override", override))
        for test in descriptor["tests"]:
            name = test["expectedLog"].removesuffix(".txt")
            for source, config in configs:
                yield pytest.param(config, test, id=f"{suite}-{name}-{source}")


def test_every_suite_has_a_local_config():
    suites = _suites()
    assert suites == sorted(LOCAL)
    for suite in suites:
        tests = data.read_json(f"evaluationlog/{suite}.json")["tests"]
        assert len(tests) == LOCAL[suite]["n_tests"], suite
    assert sum(entry["n_tests"] for entry in LOCAL.values()) == 45


@pytest.mark.parametrize(("config_file", "test"), list(_cases()))
def test_return_value(config_file, test):
    config = data.load_config(config_file)
    user = data.json_user(test.get("user"))

    details = config.get_value_details(test["key"], test["defaultValue"], user)

    assert details.error is None, details.error
    assert data.same_value(test["returnValue"], details.value), details.value
