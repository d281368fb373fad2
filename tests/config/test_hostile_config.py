"""
Hostile config input. Whatever comes in, `Config.from_json` either raises
`ConfigError` with a message, or loads a config whose every setting then
evaluates without raising: to a value, or to the default with an error. It
never crashes, hangs, or takes memory out of proportion to the input.

Inputs: random bytes, random JSON values, and mutations of ConfigCat's own
configs (dropped keys, swapped types, numbers past every range, unknown
comparators, bad segment indexes, deep nesting, truncation). A long run:

    FLAGSTAFF_HOSTILE_EXAMPLES=5000 .venv/bin/pytest tests/config/test_hostile_config.py
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

import configcat_data
import flagstaff
from flagstaff import ErrorCode

SOURCES = {
    name: configcat_data.config_text(f"configs_v6/{name}.json")
    for name in ("testmatrix_comparators_v6", "testmatrix_segments",
                 "testmatrix_prerequisite_flag")
}
COMPARATORS = SOURCES["testmatrix_comparators_v6"]

SETTINGS = settings(
    max_examples=int(os.environ.get("FLAGSTAFF_HOSTILE_EXAMPLES", "200")),
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

USERS = [
    None,
    flagstaff.User("u"),
    flagstaff.User("john@example.com", email="john@example.com", country="Hungary",
                   custom={"Custom1": "abc", "AppVersion": "1.2.3"}),
    # every kind of value a user attribute can hold
    flagstaff.User(
        "",
        email=["a@example.com"],
        country=12,
        custom={
            "Custom1": ["read", "write"],
            "Custom2": 2**70,
            "AppVersion": dt.datetime(2023, 4, 1),
            "Date": dt.datetime(2023, 4, 1, tzinfo=dt.timezone.utc),
            "Number": math.nan,
            "Bool": True,
        },
    ),
    "not a user",
]

DEFAULT = object()


def _event(text: str) -> None:
    if currently_in_test_context():
        event(text)


def check_decodes_or_refuses(raw) -> flagstaff.Config | None:
    """
    Loads `raw`; on ConfigError checks the message and returns None,
    otherwise evaluates every setting for every user of USERS.
    """
    try:
        config = flagstaff.Config.from_json(raw)
    except flagstaff.ConfigError as exc:
        assert str(exc).strip()
        _event("refused")
        return None
    keys = config.keys()
    assert len(keys) == len(set(keys)) == len(config)
    for user in USERS:
        values = config.get_all_values(user)
        for key in keys:
            details = config.get_value_details(key, DEFAULT, user)
            assert details.key == key
            if details.is_default_value:
                assert details.value is DEFAULT
                assert details.variation_id is None
                assert isinstance(details.error, str) and details.error
                assert details.error_code != ErrorCode.NONE
                assert key not in values
            else:
                assert details.error is None
                assert details.error_code == ErrorCode.NONE
                assert type(details.value) in (bool, str, int, float)
                assert values[key] == details.value
            assert config.get_value(key, DEFAULT, user) == details.value
        assert config.get_value("no such key", DEFAULT, user) is DEFAULT
    served = sum(not config.get_value_details(key, DEFAULT, USERS[2]).is_default_value
                 for key in keys)
    _event(f"loaded: {'some' if served else 'no'} setting served, "
          f"{'some' if served < len(keys) else 'none'} defective")
    return config


# ---- Random input ----------------------------------------------------------

#: the config's own short keys, so that random objects reach inside it
VOCABULARY = ["p", "s", "f", "t", "a", "r", "v", "i", "c", "u", "l", "d", "b", "n",
              "flag", ""]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-40, 40),
    st.sampled_from([2**31, -(2**31) - 1, 2**63, 2**64, 2**70, -(2**70), 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["", "0" * 64, "1_" + "a" * 64, "1.2.3", "\u00fc", "x" * 300]),
)

json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(VOCABULARY) | st.text(max_size=3), children,
                      max_size=5),
    max_leaves=40,
)


@SETTINGS
@given(st.binary(max_size=512) | st.binary(max_size=64).map(lambda b: b'{"f":' + b))
def test_random_bytes(raw):
    check_decodes_or_refuses(raw)


@SETTINGS
@given(json_values)
def test_random_json_values(value):
    check_decodes_or_refuses(json.dumps(value))


@SETTINGS
@given(json_values, json_values, st.sampled_from(VOCABULARY))
def test_random_json_inside_a_config(setting, segment, name):
    # The same values one level down, where a setting or a segment sits.
    document = {"p": {"s": "salt"}, "s": [segment], "f": {name: setting, "ok": {
        "t": 1, "v": {"s": "fine"}}}}
    config = check_decodes_or_refuses(json.dumps(document))
    if config is not None:
        assert config.get_value("ok", DEFAULT) == "fine"


# ---- Mutations of real configs --------------------------------------------

#: placeholders for JSON text that json.dumps cannot write
RAW_TOKENS = {
    "@@1e400@@": "1e400",
    "@@-1e400@@": "-1e400",
    "@@1e-400@@": "1e-400",
    "@@-0@@": "-0",
    "@@1.0e3@@": "1.0e3",
    "@@huge-int@@": "9" * 400,
    "@@deep@@": "[" * 100_000 + "]" * 100_000,
    "@@deep-object@@": '{"a":' * 50_000 + "1" + "}" * 50_000,
}

hostile_values = st.one_of(
    st.sampled_from(sorted(RAW_TOKENS)),
    st.sampled_from([2**70, -(2**70), 2**31, -1, 36, 999, 0, 1, 2, 3, 4, 100, -100]),
    st.sampled_from(["", "x", "0" * 64, None, True, False, [], {}, [[]], {"": {}}]),
    json_values,
)


def _nodes(value, path=()):
    """Every (path, container) pair of a JSON value."""
    if isinstance(value, dict):
        yield path, value
        for key, child in value.items():
            yield from _nodes(child, (*path, key))
    elif isinstance(value, list):
        yield path, value
        for index, child in enumerate(value):
            yield from _nodes(child, (*path, index))


@st.composite
def mutated_documents(draw):
    """A real config with a few random edits, as JSON text."""
    document = json.loads(SOURCES[draw(st.sampled_from(sorted(SOURCES)))])
    for _ in range(draw(st.integers(1, 6))):
        containers = [node for _, node in _nodes(document) if node]
        if not containers:
            break
        node = draw(st.sampled_from(containers))
        slot = draw(st.sampled_from(list(node) if isinstance(node, dict)
                                    else range(len(node))))
        action = draw(st.sampled_from(["drop", "replace", "replace", "wrap",
                                       "duplicate", "comparator", "index"]))
        if action == "drop":
            del node[slot]
        elif action == "replace":
            # a copy: sampled values are shared objects, and a later edit
            # could otherwise make the document contain itself
            node[slot] = copy.deepcopy(draw(hostile_values))
        elif action == "wrap":
            node[slot] = draw(st.sampled_from([[node[slot]], {"u": node[slot]},
                                               str(node[slot])]))
        elif action == "duplicate" and isinstance(node, list):
            node.extend(copy.deepcopy(node) * draw(st.integers(1, 3)))
        elif isinstance(node, dict) and "c" in node:
            # a comparator or a segment index, past the known ones
            field = "c" if action == "comparator" else draw(st.sampled_from("cs"))
            node[field] = draw(st.sampled_from([36, -1, 999, 2**31, 2**70, 2, 8,
                                                -(2**70)]))
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    for token, raw in RAW_TOKENS.items():
        text = text.replace(json.dumps(token), raw)
    return text


@SETTINGS
@given(mutated_documents())
def test_mutated_configs(text):
    check_decodes_or_refuses(text)


@SETTINGS
@given(st.sampled_from(sorted(SOURCES)), st.data())
def test_truncated_configs(name, data):
    raw = SOURCES[name].encode()
    end = data.draw(st.integers(0, len(raw.rstrip()) - 1), label="end")
    with pytest.raises(flagstaff.ConfigError) as raised:
        flagstaff.Config.from_json(raw[:end])
    assert str(raised.value)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_the_unmutated_configs_load(name):
    config = check_decodes_or_refuses(SOURCES[name])
    assert config is not None and len(config) > 0


# ---- One defective setting leaves the others alone -------------------------


def _results(config: flagstaff.Config, keys) -> dict:
    return {
        (key, index): (details.value, details.variation_id, details.is_default_value)
        for index, user in enumerate(USERS)
        for key in keys
        for details in [config.get_value_details(key, DEFAULT, user)]
    }


def _defective(name: str, edit) -> tuple[flagstaff.Config, flagstaff.Config, str]:
    """The config `name`, and a copy whose first rule-bearing setting `edit` spoils."""
    document = json.loads(SOURCES[name])
    key = next(key for key, setting in document["f"].items() if setting.get("r"))
    edit(document["f"][key], document)
    spoiled = flagstaff.Config.from_json(json.dumps(document))
    return flagstaff.Config.from_json(SOURCES[name]), spoiled, key


def _assert_only_key_fails(original, spoiled, key):
    others = [other for other in original.keys() if other != key]
    assert others
    assert _results(spoiled, others) == _results(original, others)
    for user in USERS[1:4]:
        details = spoiled.get_value_details(key, DEFAULT, user)
        assert details.is_default_value and details.value is DEFAULT
        assert details.error_code == ErrorCode.INVALID_CONFIG_MODEL
        assert details.error


@pytest.mark.parametrize("comparator", [36, -1, 999, 2**70])
def test_an_unknown_comparator_spoils_only_its_setting(comparator):
    def edit(setting, document):
        setting["r"][0]["c"][0]["u"]["c"] = comparator

    original, spoiled, key = _defective("testmatrix_comparators_v6", edit)
    _assert_only_key_fails(original, spoiled, key)
    assert "Comparison operator is missing or invalid" in spoiled.get_value_details(
        key, DEFAULT, USERS[1]).error


@pytest.mark.parametrize(
    ("setting_type", "value"),
    [(0, {"s": "x"}), (1, {"b": True}), (2, {"d": 1.5}), (3, {"s": "1.5"}),
     (2, {"i": True}), (0, {}), (7, {"b": True})],
    ids=["bool-s", "string-b", "int-d", "double-s", "int-true", "empty", "type-7"],
)
def test_a_value_of_the_wrong_type_spoils_only_its_setting(setting_type, value):
    def edit(setting, document):
        setting["t"] = setting_type
        setting["v"] = value
        setting.pop("r", None)
        setting.pop("p", None)

    original, spoiled, key = _defective("testmatrix_comparators_v6", edit)
    _assert_only_key_fails(original, spoiled, key)


@pytest.mark.parametrize("index", [8, 100, -1, 2**70])
def test_a_segment_index_out_of_range_spoils_only_its_setting(index):
    def edit(setting, document):
        assert len(document["s"]) == 8
        condition = next(c for rule in setting["r"] for c in rule["c"] if "s" in c)
        condition["s"]["s"] = index

    original, spoiled, key = _defective("testmatrix_segments", edit)
    _assert_only_key_fails(original, spoiled, key)


# ---- Errors name what is wrong and where ------------------------------------


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (b"not json", ["malformed", "byte"]),
        (COMPARATORS[:100].encode(), ["truncated"]),
        (b"", ["truncated"]),
        (b"[]", ["`$`", "object"]),
        (b'"config"', ["`$`", "object"]),
        (b'{"f": []}', ["`$.f`"]),
        (b'{"f": "flags"}', ["`$.f`"]),
        (b'{"p": 1, "f": {}}', ["`$.p`"]),
        (b'{"p": {"s": 1}, "f": {}}', ["`$.p.s`"]),
        (b'{"s": {}, "f": {}}', ["`$.s`"]),
        (b'{"f": {}} trailing', ["trailing"]),
        (b'{"f": {"a": ' + b"[" * 100_000 + b"}}", ["nested too deeply"]),
    ],
    ids=["not-json", "truncated", "empty", "top-level-array", "top-level-string",
         "f-list", "f-string", "p-int", "salt-int", "s-object", "trailing", "deep"],
)
def test_config_errors_name_the_path(raw, names):
    with pytest.raises(flagstaff.ConfigError) as raised:
        flagstaff.Config.from_json(raw)
    message = str(raised.value)
    for name in names:
        assert name in message, message


def test_setting_errors_name_the_path():
    config = flagstaff.Config.from_json(
        b'{"f": {"bad": {"t": 1, "v": {"s": "x"}, "r": [{"c": [{"u": {"a": 5}}]}]},'
        b' "ok": {"t": 1, "v": {"s": "fine"}}}}')
    details = config.get_value_details("bad", DEFAULT)
    assert details.error_code == ErrorCode.INVALID_CONFIG_MODEL
    assert "$.f['bad'].r[0].c[0].u.a" in details.error
    assert config.get_value("ok", DEFAULT) == "fine"


# ---- Size: deep, long, and heavy inputs --------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"f": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        b'{"f": {"a": {"t": 1, "v": {"s": "x"}, "x": ' + b'{"a":' * 100_000
        + b"1" + b"}" * 100_000 + b"}}}",
        b'{"s": [' + b"[" * 100_000 + b"]" * 100_000 + b'], "f": {}}',
        b'{"f": {"a": {"t": 1, "v": {"s": "x"}, "r": [{"c": [{"u": {"a": "b", "c": 0,'
        b' "l": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}]}]}}}",
    ],
    ids=["top", "setting", "unknown-key", "segment", "comparison-value"],
)
def test_deep_nesting(raw):
    check_decodes_or_refuses(raw)


@pytest.mark.timeout(60)
def test_a_list_of_a_million_comparison_values():
    items = [f"v{index}" for index in range(1_000_000)]
    document = {"f": {"a": {"t": 1, "v": {"s": "x"}, "r": [{
        "c": [{"u": {"a": "Custom1", "c": 0, "l": items}}],
        "s": {"v": {"s": "in"}, "i": "1"}}]}}}
    config = check_decodes_or_refuses(json.dumps(document))
    def user(value):
        return flagstaff.User("u", custom={"Custom1": value})

    assert config.get_value("a", None, user("v999999")) == "in"
    assert config.get_value("a", None, user("v")) == "x"


@pytest.mark.timeout(60)
def test_a_config_of_a_hundred_thousand_settings():
    flags = {f"k{index}": {"t": 2, "v": {"i": index}} for index in range(100_000)}
    document = {"f": flags}
    config = flagstaff.Config.from_json(json.dumps(document))
    assert len(config) == 100_000
    assert config.get_value("k99999", None) == 99_999


def _child(script: str, timeout: float) -> str:
    """Runs `script` in a fresh interpreter; its stdout, or a failed test."""
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout} s")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.timeout(120)
def test_prerequisites_referenced_twice_do_not_take_exponential_time():
    # Each flag asks twice for the next one: evaluated naively, k0 costs
    # 2**40 evaluations. The values are the same each time for one user,
    # so a bounded evaluation exists; the core must not hang.
    out = _child("""
        import json
        import flagstaff
        depth = 40
        def asks(key):
            return [{"p": {"f": key, "c": 1, "v": {"s": "never"}}}] * 2
        flags = {f"k{i}": {"t": 1, "v": {"s": "x"},
                           "r": [{"c": asks(f"k{i + 1}"), "s": {"v": {"s": "m"}}}]}
                 for i in range(depth)}
        flags[f"k{depth}"] = {"t": 1, "v": {"s": "x"}}
        config = flagstaff.Config.from_json(json.dumps({"f": flags}))
        print(config.get_value("k0", None))
    """, timeout=10)
    assert out.strip() == "m"


#: Memory grows linearly with the input; the bound catches anything worse.
#: The worst shapes are millions of empty objects: each `{}` (3 bytes of
#: input) becomes a decoded struct and a compiled C record, about 130 bytes
#: together (45x measured), where configcat-client's own json.load takes
#: about 25x. 64x allows that much and still fails a blow-up.
MEMORY_FACTOR = 64

MEMORY_SHAPES = {
    # a realistic config, for scale
    "realistic": """
        document = json.loads(open(COMPARATORS).read())
        copies = SIZE // len(json.dumps(document["f"])) + 1
        flags = {f"{key}{copy}": value for copy in range(copies)
                 for key, value in document["f"].items()}
        raw = json.dumps({"p": document["p"], "f": flags}).encode()
    """,
    "million-strings": """
        items = b",".join(b'"%04x"' % (i % 65536) for i in range(SIZE // 7))
        raw = (b'{"f":{"a":{"t":1,"v":{"s":"x"},"r":[{"c":[{"u":{"a":"C","c":0,"l":['
               + items + b']}}],"s":{"v":{"s":"y"}}}]}}}')
    """,
    "hashed-values": """
        items = b",".join([b'"' + b"a" * 64 + b'"'] * (SIZE // 67))
        raw = (b'{"f":{"a":{"t":1,"v":{"s":"x"},"r":[{"c":[{"u":{"a":"C","c":16,"l":['
               + items + b']}}],"s":{"v":{"s":"y"}}}]}}}')
    """,
    "empty-conditions": """
        raw = (b'{"f":{"a":{"t":1,"v":{"s":"x"},"r":[{"c":['
               + b",".join([b"{}"] * (SIZE // 3)) + b'],"s":{"v":{"s":"y"}}}]}}}')
    """,
    "empty-settings": """
        raw = b'{"f":{' + b",".join(b'"%d":{}' % i for i in range(SIZE // 11)) + b"}}"
    """,
    "long-string": """
        raw = b'{"f":{"a":{"t":1,"v":{"s":"' + b"x" * SIZE + b'"}}}}'
    """,
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("shape", sorted(MEMORY_SHAPES))
def test_memory_stays_in_proportion_to_the_input(shape):
    out = _child(f"""
        import json, resource, sys
        import flagstaff
        COMPARATORS = {str(configcat_data.path(
            "configs_v6/testmatrix_comparators_v6.json"))!r}
        SIZE = 10 * 1024 * 1024
        {textwrap.indent(textwrap.dedent(MEMORY_SHAPES[shape]), " " * 8).strip()}
        def peak():
            # Linux: reset the high-water mark to the present first, so
            # that building `raw` does not count; elsewhere ru_maxrss.
            try:
                with open("/proc/self/status") as status:
                    return next(int(line.split()[1]) * 1024 for line in status
                                if line.startswith("VmHWM"))
            except OSError:
                kilo = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                return kilo if sys.platform == "darwin" else kilo * 1024
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
        except OSError:
            pass
        before = peak()
        try:
            config = flagstaff.Config.from_json(raw)
            for key in config.keys()[:10]:
                config.get_value_details(key, None, flagstaff.User("u"))
        except flagstaff.ConfigError:
            pass
        print(len(raw), peak() - before)
    """, timeout=240)
    size, grown = map(int, out.split())
    assert size >= 10 * 1024 * 1024
    assert grown <= MEMORY_FACTOR * size, (
        f"{shape}: {grown / 1e6:.0f} MB for {size / 1e6:.0f} MB of input "
        f"({grown / size:.0f}x)")
