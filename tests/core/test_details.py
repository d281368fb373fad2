"""
EvaluationDetails for hand-picked cases: which rule and option matched, the
variation id, and the default value with its error for a missing key.
"""

import hashlib

import pytest

import configcat_data as data
from flagstaff import ErrorCode, User

MATRIX = "configs_v6/testmatrix.json"
RULE_OPTIONS = "evaluationlog/_local_configs/options_within_targeting_rule.json"

#: rules on Country (0), Custom1 (1) and Email (2), then 4 x 25 % options
ADVANCED = "string25Cat25Dog25Falcon25HorseAdvancedRules"
#: 4 x 25 % options on Identifier, no rules
PLAIN_SPLIT = "string25Cat25Dog25Falcon25Horse"
#: one rule on Email whose THEN is 75/0/25/0 % options on Country
RULE_SPLIT = "stringContainsString75Cat0Dog25Falcon0HorseDefaultCat"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        pytest.param(
            User("1", country="Hungary", custom={"Custom1": "admin"}),
            ("Dolphin", "3accb1d0", 0, None),
            id="first-rule",
        ),
        pytest.param(
            User("1", email="a@configcat.com", custom={"Custom1": "admin"}),
            ("Lion", "e95ebf10", 1, None),
            id="second-rule",
        ),
        pytest.param(
            User("1", email="a@configcat.com"),
            ("Kitten", "88243650", 2, None),
            id="third-rule",
        ),
        pytest.param(User("1"), ("Cat", "83461b47", None, 0), id="option"),
    ],
)
def test_rules_then_options(user, expected):
    config = data.load_config(MATRIX)

    details = config.get_value_details(ADVANCED, "default", user)

    assert details.key == ADVANCED
    served = (
        details.value,
        details.variation_id,
        details.matched_rule,
        details.matched_option,
    )
    assert served == expected
    assert not details.is_default_value
    assert details.error is None
    assert details.error_code == ErrorCode.NONE
    assert details.user is user


@pytest.mark.parametrize(
    ("country", "value", "variation_id", "rule", "option"),
    [
        # bucket of key + "Hungary" is 15: the 75 % Cat option
        pytest.param("Hungary", "Cat", "05a1d8f3", 0, 0, id="bucket-15"),
        # bucket of key + "Japan" is 91: past Cat (75) and Dog (0), Falcon
        pytest.param("Japan", "Falcon", "06c2db91", 0, 2, id="bucket-91"),
        # no Country: the rule's options cannot apply, the rule is ignored
        pytest.param(None, "Cat", "05a1d8f3", None, None, id="attribute-missing"),
    ],
)
def test_options_within_rule(country, value, variation_id, rule, option):
    config = data.load_config(RULE_OPTIONS)
    user = User("12345", email="joe@configcat.com", country=country)

    details = config.get_value_details(RULE_SPLIT, "default", user)

    assert details.value == value
    assert details.variation_id == variation_id
    assert (details.matched_rule, details.matched_option) == (rule, option)
    assert details.error is None


def test_percentage_worked_example():
    # §6: SHA-1 of key + "a@configcat.com" starts 32bd681, 53204609 % 100 = 9,
    # which is below the first option's 25 %: Cat.
    config = data.load_config(MATRIX)
    text = PLAIN_SPLIT + "a@configcat.com"
    assert int(hashlib.sha1(text.encode()).hexdigest()[:7], 16) == 53204609

    details = config.get_value_details(PLAIN_SPLIT, "default", User("a@configcat.com"))

    assert details.value == "Cat"
    assert details.variation_id == "d227b334"
    assert details.matched_rule is None
    assert details.matched_option == 0


@pytest.mark.parametrize(
    ("identifier", "value", "option"),
    [
        pytest.param("c@configcat.com", "Dog", 1, id="bucket-41"),
        pytest.param("b@configcat.com", "Falcon", 2, id="bucket-58"),
        pytest.param("", "Dog", 1, id="empty-identifier-bucket-29"),
    ],
)
def test_percentage_options_on_identifier(identifier, value, option):
    config = data.load_config(MATRIX)

    details = config.get_value_details(PLAIN_SPLIT, "default", User(identifier))

    assert (details.value, details.matched_option) == (value, option)
    assert details.matched_rule is None


@pytest.mark.parametrize(
    ("key", "value", "variation_id"),
    [
        pytest.param("stringContainsDogDefaultCat", "Cat", "ce564c3a", id="rule"),
        pytest.param(PLAIN_SPLIT, "Chicken", "2588a3e6", id="options"),
        pytest.param(ADVANCED, "Chicken", "8250ef5a", id="rules-and-options"),
    ],
)
def test_no_user_serves_simple_value(key, value, variation_id):
    config = data.load_config(MATRIX)

    details = config.get_value_details(key, "default", None)

    assert details.value == value
    assert details.variation_id == variation_id
    assert (details.matched_rule, details.matched_option) == (None, None)
    assert details.error is None
    assert details.user is None


def test_missing_key_serves_default():
    config = data.load_config(MATRIX)
    user = User("12345")

    details = config.get_value_details("noSuchFlag", "fallback", user)

    assert details.key == "noSuchFlag"
    assert details.value == "fallback"
    assert details.is_default_value
    assert details.variation_id is None
    assert (details.matched_rule, details.matched_option) == (None, None)
    assert details.error_code == ErrorCode.SETTING_KEY_MISSING
    assert "'noSuchFlag'" in details.error
    assert "the key was not found in config JSON" in details.error
    assert f"Available keys: {config.keys()!r}" in details.error
    assert config.get_value("noSuchFlag", 42, user) == 42


def test_variation_ids():
    config = data.load_config("configs_v6/testmatrix_variationId.json")
    user = User(
        "a@configcat.com",
        email="a@configcat.com",
        country="Hungary",
        custom={"Custom1": "admin"},
    )

    served = {key: config.get_value_details(key, None, user) for key in config.keys()}

    assert {key: d.variation_id for key, d in served.items()} == {
        "boolean": "67787ae4",
        "decimal": "8f9559cf",
        "text": "9bdc6a1f",
        "whole": "ab30533b",
    }
    assert all(d.error_code == ErrorCode.NONE for d in served.values())
