"""
The local-only configs of ConfigCat's Python SDK tests (``misc/``): a
prerequisite cycle, the comparison configs, and the flag-override configs
evaluated as plain configs and merged over another config.
"""

import json

import pytest

import configcat_data as data
import flagstaff
from flagstaff import ErrorCode
from flagstaff.config import ConfigModel, decode_config

CIRCULAR = "misc/test_circulardependency_v6.json"
SEGMENTS = "misc/test_override_segments_v6.json"
FLAG_DEPENDENCY = "misc/test_override_flagdependency_v6.json"
PREREQUISITES = "configs_v6/testmatrix_prerequisite_flag.json"

COMPARISON_CONFIGS = (
    "misc/comparison_attribute_conversion.json",
    "misc/comparison_attribute_trimming.json",
    "misc/comparison_value_trimming.json",
)

JOHN = "john@example.com"  # in segment "Developers" only
JANE = "jane@example.com"  # in segment "Beta Users" only
SENSITIVE = "john@sensitivecompany.com"  # targeted by the prerequisite config


def _user(email=None):
    return flagstaff.User("12345", email=email)


def _merged(*files):
    """
    The settings of `files`, later files winning per key, each setting keeping
    its own config's salt and segments (a flag-override merge).
    """
    models = [decode_config(data.config_text(file)) for file in files]
    settings = {}
    for model in models:
        settings.update(model.settings)
    return flagstaff.Config.from_model(
        ConfigModel(preferences=models[0].preferences, settings=settings)
    )


@pytest.mark.parametrize(
    ("key", "cycle"),
    [
        pytest.param("key1", "'key1' -> 'key1'", id="key1-self"),
        pytest.param("key2", "'key2' -> 'key3' -> 'key2'", id="key2"),
        pytest.param("key3", "'key3' -> 'key2' -> 'key3'", id="key3"),
        pytest.param("key4", "'key4' -> 'key3' -> 'key2' -> 'key3'", id="key4-into"),
    ],
)
@pytest.mark.parametrize("user", [None, _user(JOHN)], ids=["no-user", "user"])
def test_circular_dependency(key, cycle, user):
    config = data.load_config(CIRCULAR)

    details = config.get_value_details(key, "default", user)

    assert details.value == "default"
    assert details.is_default_value
    assert details.variation_id is None
    assert details.error_code == ErrorCode.INVALID_CONFIG_MODEL
    assert "Circular dependency" in details.error
    assert f"following depending flags: {cycle}." in details.error


def test_circular_dependency_leaves_no_value():
    config = data.load_config(CIRCULAR)

    assert config.keys() == ["key1", "key2", "key3", "key4"]
    assert config.get_all_values(None) == {}


@pytest.mark.parametrize("config_file", COMPARISON_CONFIGS)
def test_comparison_config_serves_simple_values_without_user(config_file):
    settings = json.loads(data.config_text(config_file))["f"]
    config = data.load_config(config_file)

    assert config.keys() == list(settings)
    for key, setting in settings.items():
        details = config.get_value_details(key, None, None)
        assert details.error is None, details.error
        assert details.value == setting["v"]["s"]
        assert details.variation_id == setting.get("i")
        assert details.matched_rule is None
    simple = {key: setting["v"]["s"] for key, setting in settings.items()}
    assert config.get_all_values(None) == simple


def test_simple_override_config_as_plain_config():
    config = data.load_config("misc/test.json")

    assert config.get_all_values(None) == {
        "disabledFeature": False,
        "enabledFeature": True,
        "intSetting": 5,
        "doubleSetting": 3.14,
        "stringSetting": "test",
    }


@pytest.mark.parametrize(
    ("user", "expected", "matched_rule"),
    [
        pytest.param(_user(JOHN), True, 0, id="developer-not-beta"),
        pytest.param(_user(JANE), False, None, id="beta-not-developer"),
        pytest.param(_user("kate@example.com"), False, None, id="neither"),
        pytest.param(_user(), False, None, id="no-email"),
        pytest.param(None, False, None, id="no-user"),
    ],
)
def test_segments_override_config(user, expected, matched_rule):
    config = data.load_config(SEGMENTS)

    details = config.get_value_details("developerAndBetaUserSegment", None, user)

    assert details.error is None, details.error
    assert details.value is expected
    assert details.matched_rule == matched_rule
    assert details.variation_id == ("ddc50638" if expected else "6427f4b8")


def test_flag_dependency_override_config_as_plain_config():
    config = data.load_config(FLAG_DEPENDENCY)

    assert config.get_value("mainStringFlag", None) == "private"
    # Its prerequisite, mainIntFlag, comes from the remote config only.
    details = config.get_value_details("stringDependsOnInt", "default", None)
    assert details.value == "default"
    assert details.error_code == ErrorCode.INVALID_CONFIG_MODEL
    assert "Prerequisite flag key is missing or invalid" in details.error


@pytest.mark.parametrize(
    ("key", "email", "expected"),
    [
        # the local mainStringFlag is "private" for every user
        pytest.param("mainStringFlag", SENSITIVE, "private", id="main-local"),
        pytest.param("mainStringFlag", JANE, "private", id="main-local-jane"),
        pytest.param("stringDependsOnString", JANE, "Dog", id="remote-on-local"),
        # the local stringDependsOnInt wants the remote mainIntFlag to be 42
        pytest.param("stringDependsOnInt", JANE, "Dog", id="local-on-remote"),
        pytest.param("stringDependsOnInt", SENSITIVE, "Cat", id="local-on-remote-2"),
        pytest.param("mainIntFlag", SENSITIVE, 2, id="remote-hashed"),
    ],
)
def test_flag_dependency_local_over_remote(key, email, expected):
    config = _merged(PREREQUISITES, FLAG_DEPENDENCY)

    details = config.get_value_details(key, None, _user(email))

    assert details.error is None, details.error
    assert details.value == expected


@pytest.mark.parametrize(
    ("key", "email", "expected"),
    [
        pytest.param("mainStringFlag", SENSITIVE, "private", id="main-remote"),
        pytest.param("mainStringFlag", JANE, "public", id="main-remote-jane"),
        pytest.param("stringDependsOnString", JANE, "Cat", id="remote-on-remote"),
        pytest.param("stringDependsOnInt", SENSITIVE, "Dog", id="remote-int"),
        pytest.param("stringDependsOnInt", JANE, "Cat", id="remote-int-jane"),
    ],
)
def test_flag_dependency_remote_over_local(key, email, expected):
    config = _merged(FLAG_DEPENDENCY, PREREQUISITES)

    details = config.get_value_details(key, None, _user(email))

    assert details.error is None, details.error
    assert details.value == expected


@pytest.mark.parametrize(
    ("key", "email", "expected"),
    [
        pytest.param("developerAndBetaUserSegment", JOHN, True, id="segment-own-salt"),
        pytest.param("developerAndBetaUserSegment", JANE, False, id="segment-beta"),
        pytest.param("mainStringFlag", SENSITIVE, "private", id="remote-salt"),
        pytest.param("mainStringFlag", JOHN, "public", id="remote-other"),
    ],
)
def test_merged_settings_keep_their_salt_and_segments(key, email, expected):
    # The two configs have different salts and only one has segments.
    config = _merged(PREREQUISITES, SEGMENTS)

    details = config.get_value_details(key, None, _user(email))

    assert details.error is None, details.error
    assert details.value == expected
