"""
The typed cases of ConfigCat's Python SDK (``typed_cases/``): non-string user
attributes, canonical string conversion, trimming, and prerequisite errors.
"""

import copy
import json
import math

import pytest

import configcat_data as data
import flagstaff
from flagstaff import ErrorCode

#: files whose cases are {key, user, expected} (+ "config" per case or per file)
VALUE_FILES = (
    "non_text_attribute_conversion",
    "attribute_conversion_to_canonical_string",
    "comparison_attribute_trimming",
    "comparison_value_trimming",
)

#: cases per file (MANIFEST.md: 169 in all)
COUNTS = {
    "non_text_attribute_conversion": 58,
    "attribute_conversion_to_canonical_string": 16,
    "comparison_attribute_trimming": 36,
    "comparison_value_trimming": 28,
    "prerequisite_circular_dependency": 3,
    "prerequisite_value_type_mismatch": 28,
}

#: case id -> (why flagstaff deliberately differs from configcat-client, the
#: value flagstaff serves). DESIGN.md "Compatibility" names the differences:
#: floats in ConfigCat's canonical (JS) string form, and a list or datetime
#: given to a number comparator makes the condition "cannot evaluate" instead
#: of failing the evaluation. `test_known_divergences_are_complete` checks
#: that this lists exactly the cases which hit one of them.
KNOWN_DIVERGENCES: dict = {}

NUMBER_COMPARATORS = range(10, 16)


def _file(stem):
    return data.read_json(f"typed_cases/{stem}.json")


def _value_cases():
    for stem in VALUE_FILES:
        document = _file(stem)
        for index, case in enumerate(document["cases"]):
            config = case.get("config", document.get("config"))
            case_id = f"{stem}-{index:02d}-{case['key']}"
            yield pytest.param(case_id, config, case, id=case_id)


VALUE_CASES = list(_value_cases())


def _conditions(setting):
    for rule in setting.get("r", []):
        for condition in rule["c"]:
            if "u" in condition:
                yield condition["u"]


def _divergence(config, case):
    """
    Which documented divergence a case hits, or None.
    """
    setting = json.loads(data.config_text(config))["f"][case["key"]]
    comparators = {condition["c"] for condition in _conditions(setting)}
    for value in case["user"].get("custom", {}).values():
        attribute = data.typed(value)
        if isinstance(attribute, float) and math.isfinite(attribute):
            size = abs(attribute)
            if 1e16 <= size < 1e21 or 1e-6 <= size < 1e-4:
                return "float string form"
        if value["type"] in ("list", "datetime"):
            if comparators & set(NUMBER_COMPARATORS):
                return f"{value['type']} given to a number comparator"
    return None


def test_case_counts():
    counts = {stem: len(_file(stem)["cases"]) for stem in COUNTS}
    assert counts == COUNTS
    assert sum(counts.values()) == 169


def test_known_divergences_are_complete():
    hits = {
        case_id
        for case_id, config, case in (p.values for p in VALUE_CASES)
        if _divergence(config, case)
    }
    assert hits == set(KNOWN_DIVERGENCES)


@pytest.mark.parametrize(("case_id", "config_file", "case"), VALUE_CASES)
def test_value_case(case_id, config_file, case):
    config = data.load_config(config_file)
    user = data.typed_user(case["user"])
    expected = data.typed(case["expected"])

    details = config.get_value_details(case["key"], None, user)

    if case_id in KNOWN_DIVERGENCES:
        reason, served = KNOWN_DIVERGENCES[case_id]
        assert not data.same_value(expected, served), reason
        assert data.same_value(served, details.value), reason
        return
    assert details.error is None, details.error
    assert data.same_value(expected, details.value), details.value


CIRCULAR = _file("prerequisite_circular_dependency")


@pytest.mark.parametrize(
    "case", CIRCULAR["cases"], ids=[case["key"] for case in CIRCULAR["cases"]]
)
def test_prerequisite_circular_dependency(case):
    config = data.load_config(CIRCULAR["config"])

    details = config.get_value_details(case["key"], "default_value", None)

    assert details.value == "default_value"
    assert details.is_default_value
    assert details.variation_id is None
    assert details.error_code == ErrorCode.INVALID_CONFIG_MODEL
    assert "Circular dependency detected" in details.error
    assert case["cycle"] in details.error


MISMATCH = _file("prerequisite_value_type_mismatch")

#: value key of a setting value by Python type, as a dictionary override
#: builds it (configcatclient.localdictionarydatasource)
_VALUE_KEYS = {bool: (0, "b"), str: (1, "s"), int: (2, "i"), float: (3, "d")}


def _override(document, key, value):
    """
    `document` with setting `key` replaced by a simple setting of `value`.
    A value of no setting type gets no type, as configcat-client does it.
    """
    document = copy.deepcopy(document)
    if type(value) in _VALUE_KEYS:
        setting_type, value_key = _VALUE_KEYS[type(value)]
        setting = {"t": setting_type, "v": {value_key: value}}
    else:
        setting = {"v": {"unsupported_value": value}}
    document["f"][key] = setting
    return document


def _mismatch_id(case):
    value = case["override_value"]
    return f"{case['key']}-{value['type']}-{value['v']}"


@pytest.mark.parametrize(
    "case", MISMATCH["cases"], ids=[_mismatch_id(c) for c in MISMATCH["cases"]]
)
def test_prerequisite_value_type_mismatch(case):
    base = json.loads(data.config_text(MISMATCH["config"]))
    value = data.typed(case["override_value"])
    document = _override(base, case["override_key"], value)
    config = flagstaff.Config.from_json(json.dumps(document))
    expected = data.typed(case["expected"])

    details = config.get_value_details(case["key"], None, None)

    if expected is not None:
        assert details.error is None, details.error
        assert details.value == expected
        return
    assert details.value is None
    assert details.is_default_value
    assert details.error_code == ErrorCode.INVALID_CONFIG_MODEL
    if type(value) in _VALUE_KEYS:
        assert "Setting value is not of the expected type" in details.error
    else:
        assert "Unsupported setting type" in details.error


def _hashed_prefix_config(comparator, item):
    rule = {
        "c": [{"u": {"a": "Identifier", "c": comparator, "l": [item]}}],
        "s": {"v": {"s": "rule"}, "i": "r"},
    }
    setting = {"t": 1, "r": [rule], "v": {"s": "simple"}, "i": "s"}
    document = {"p": {"s": "salt"}, "f": {"k": setting}}
    return flagstaff.Config.from_json(json.dumps(document))


@pytest.mark.parametrize(
    ("comparator", "served"),
    [
        pytest.param(22, "simple", id="starts-with"),
        pytest.param(23, "rule", id="not-starts-with"),
        pytest.param(24, "simple", id="ends-with"),
        pytest.param(25, "rule", id="not-ends-with"),
    ],
)
def test_hashed_prefix_length_with_spaces(comparator, served):
    # The minimal form of comparison_value_trimming's hashed starts/ends-with
    # cases: configcat-client reads the length with int(), which allows the
    # spaces, and the hash " abc " then matches nothing (no evaluation error).
    config = _hashed_prefix_config(comparator, " 5_abc ")

    details = config.get_value_details("k", "default", flagstaff.User("12345"))

    assert (details.value, details.error) == (served, None)
