"""
explain() tells the evaluation the core did: for every setting of ConfigCat's
configs and a sample of users, the value, the targeting rule and the
percentage option it names are those of get_value_details.
"""

import subprocess
import sys

import pytest

import configcat_data as data
import flagstaff
from flagstaff.core._explain import _by

CONFIGS = sorted(path.name for path in data.path("configs_v6").glob("*.json")
                 if path.name != "index.json")

USERS = [
    None,
    flagstaff.User(""),
    flagstaff.User("a@configcat.com", email="a@configcat.com", country="Hungary",
                   custom={"Custom1": "admin"}),
    flagstaff.User("12345", email="john@example.com", country="USA",
                   custom={"Custom1": "1.2.3", "AppVersion": "2.0.0"}),
    flagstaff.User("bryanw", email="bryanw@verizon.net", country="Canada",
                   custom={"Custom1": "17", "🆃🅴🆇🆃": "x"}),
]


@pytest.mark.parametrize("name", CONFIGS)
def test_explain_names_what_get_value_details_serves(name):
    config = data.load_config(f"configs_v6/{name}")
    for key in config.keys():
        for user in USERS:
            details = config.get_value_details(key, None, user)
            text = config.explain(key, user)
            assert text.startswith(f"Evaluating '{key}'")
            if details.is_default_value:
                assert "Failed:" in text, (key, user, text)
                continue
            rule = -1 if details.matched_rule is None else details.matched_rule
            option = -1 if details.matched_option is None else details.matched_option
            last = text.splitlines()[-1]
            assert last == f"  Returning {details.value!r}: {_by(rule, option)}.", (
                key, user, text)


def test_explain_follows_rules_segments_and_buckets():
    config = flagstaff.Config.from_json(
        (data.REPO / "src" / "flagstaff" / "examples" / "onboarding.json").read_text())
    text = config.get_value_details(
        "onboardingFeature", "x", flagstaff.User("user-1", custom={"plan": "free"})
    ).explain()
    bucket = flagstaff.core._core.percentage_bucket("onboardingFeature", "user-1")
    assert "in segment 'Free plan': User.plan IS ONE OF ['free'] => true" in text
    assert "Targeting rule 1: IF User IS IN SEGMENT 'Free plan' => true" in text
    assert f"hashes to bucket {bucket} (of 0..99)" in text

    premium = config.explain("onboardingFeature",
                             flagstaff.User("user-3", custom={"plan": "premium"}))
    assert "=> false" in premium and "the value for all others" in premium


def test_explain_of_a_missing_key_lists_the_keys():
    config = data.load_config("configs_v6/testmatrix.json")
    assert "is not in the config" in config.explain("nope")


def test_explain_command(tmp_path):
    example = data.REPO / "src" / "flagstaff" / "examples" / "onboarding.json"
    done = subprocess.run(
        [sys.executable, "-m", "flagstaff", "explain", str(example), "premiumBadge",
         "--user", '{"Identifier": "u1", "plan": "premium"}'],
        capture_output=True, text=True, check=True)
    assert "Returning True: targeting rule 1." in done.stdout
