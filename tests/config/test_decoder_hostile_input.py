"""
Hostile config input gives ConfigError or a config whose bad settings serve
the default with an error: never a crash, a hang or an unbounded allocation.
"""

import datetime
import json
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flagstaff
from configcat_data import path

USERS = [
    None,
    flagstaff.User("u1", email="a@example.com", country="NL", custom={"plan": "free"}),
    flagstaff.User("", custom={"Custom1": ["a", "b"], "n": 2**70,
                               "d": datetime.datetime(2024, 1, 1)}),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from("pfsrtavicnlbdu") | st.text(max_size=3),
                      inner, max_size=5),
    max_leaves=40,
)


def load_or_config_error(raw):
    try:
        config = flagstaff.Config.from_json(raw)
    except flagstaff.ConfigError as exc:
        assert str(exc)
        return None
    for key in config.keys():
        for user in USERS:
            details = config.get_value_details(key, "fallback", user)
            assert not details.is_default_value or details.error
    return config


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_random_bytes(raw):
    load_or_config_error(raw)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_json_values(document):
    load_or_config_error(json.dumps(document))


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_config(data):
    document = json.loads(path("configs_v6/testmatrix_comparators_v6.json").read_text())
    settings_ = document["f"]
    key = data.draw(st.sampled_from(sorted(settings_)))
    rule_path = settings_[key].get("r") or [{}]
    target = data.draw(st.sampled_from([settings_[key], rule_path[0]]))
    field = data.draw(st.sampled_from(sorted(target) or ["t"]))
    target[field] = data.draw(json_values | st.sampled_from(
        [36, -1, 999, 2**70, 1e308, [], {}, "x"]))
    load_or_config_error(json.dumps(document))


@pytest.mark.parametrize("size", [1_000, 100_000], ids=["1k", "100k"])
def test_deep_nesting_is_a_config_error_or_a_bad_setting(size):
    nested = "[" * size + "]" * size
    load_or_config_error('{"f": {"k": {"t": 0, "v": ' + nested + "}}}")
    load_or_config_error(nested)


def test_numbers_out_of_range():
    config = load_or_config_error(
        '{"f": {"a": {"t": 3, "v": {"d": 1e400}}, "b": {"t": 2, "v": {"i": 1}}}}'
    )
    assert config is not None and config.get_value("b", 0) == 1
    details = config.get_value_details("a", 0.5)
    assert details.is_default_value and "$.f['a']" in details.error


def test_huge_list_takes_memory_in_proportion():
    items = json.dumps(["x" * 8] * 200_000)
    raw = ('{"f": {"k": {"t": 0, "r": [{"c": [{"u": {"a": "Email", "c": 0, "l": '
           + items + '}}], "s": {"v": {"b": true}}}], "v": {"b": false}}}}')
    tracemalloc.start()
    config = flagstaff.Config.from_json(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert config.get_value("k", None, flagstaff.User("u", email="x" * 8)) is True
    assert peak < 30 * len(raw), f"peak {peak} bytes for {len(raw)} bytes of input"
