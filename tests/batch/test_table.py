"""
evaluate_table and evaluate_batches against the evaluator they batch: every
row of a result is what ``Config.get_value`` serves the user of that row, as
Arrow's ``to_pylist()`` shows the row, and its variation id is what
``get_value_details`` names.

The property tests draw configs from the differential strategies
(tests/test_differential.py) and tables of users with columns of every
encoding the batch layer reads. A long run:

    FLAGSTAFF_BATCH_EXAMPLES=2000 .venv/bin/pytest tests/batch/test_table.py
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import configcat_data as data
import flagstaff
from flagstaff.batch import BatchError, _table, evaluate_batches, evaluate_table
from test_differential import (
    ATTRIBUTES,
    DATETIMES,
    DEFAULTS,
    EPOCH,
    LISTS,
    TEXTS,
    UTC,
    VALUES_BY_TYPE,
    configs,
    floats,
    strings,
)

EXAMPLES = int(os.environ.get("FLAGSTAFF_BATCH_EXAMPLES", "200"))

SETTINGS = settings(
    max_examples=EXAMPLES,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: setting type id -> the type of its result column
RESULT_TYPES = {0: pa.bool_(), 1: pa.string(), 2: pa.int64(), 3: pa.float64()}

WELL_KNOWN = ("Identifier", "Email", "Country")

#: the attributes the drawn configs compare, and a column no config reads
COLUMN_NAMES = [*ATTRIBUTES, "Unused"]


# ---- The reference: get_value, row by row --------------------------------------


def row_user(row: dict) -> flagstaff.User:
    """The User of a row of ``to_pylist()``: a null is a missing attribute."""
    custom = {name: value for name, value in row.items()
              if name not in WELL_KNOWN and value is not None}
    return flagstaff.User(row.get("Identifier"), email=row.get("Email"),
                          country=row.get("Country"), custom=custom)


def expected_row(config, user, keys, defaults) -> dict:
    """What the batch should hold for `user`: values and variation ids."""
    served = {}
    for key in keys:
        default = defaults.get(key)
        details = config.get_value_details(key, default, user)
        served[key] = config.get_value(key, default, user)
        # a row that fails serves the default and no variation id
        served[f"{key}:variation_id"] = (
            None if details.is_default_value else details.variation_id)
    return served


def mismatches(config, rows: list, result: pa.Table, keys, defaults,
               expected: list | None = None) -> list[str]:
    """The cells of `result` that differ from get_value for `rows`."""
    served = result.to_pylist()
    assert len(served) == len(rows)
    found = []
    for number, (row, got) in enumerate(zip(rows, served)):
        want = (expected[number % len(expected)] if expected is not None
                else expected_row(config, row_user(row), keys, defaults))
        for name, value in want.items():
            if not data.same_value(value, got[name]):
                found.append(f"row {number} {name}: batch {got[name]!r}, "
                             f"get_value {value!r} (user {row!r})")
    return found


def assert_result_types(result: pa.Table, types: dict, variation_ids: bool) -> None:
    names = []
    for key, setting_type in types.items():
        assert result.schema.field(key).type == RESULT_TYPES[setting_type], key
        names.append(key)
        if variation_ids:
            assert result.schema.field(f"{key}:variation_id").type == pa.string()
            names.append(f"{key}:variation_id")
    assert result.column_names == names


# ---- Columns of users ----------------------------------------------------------

STRING_TYPES = {
    "string": pa.string(),
    "large_string": pa.large_string(),
    "string_view": pa.string_view(),
    "dictionary": pa.dictionary(pa.int32(), pa.string()),
    "dictionary<large_string>": pa.dictionary(pa.int16(), pa.large_string()),
}
INT_TYPES = {
    "int64": (pa.int64(), -(2**63), 2**63 - 1),
    "int32": (pa.int32(), -(2**31), 2**31 - 1),
    "uint8": (pa.uint8(), 0, 255),
}
LIST_TYPES = {
    "list": pa.list_(pa.string()),
    "large_list": pa.large_list(pa.string()),
    "list<large_string>": pa.list_(pa.large_string()),
    "list<string_view>": pa.list_(pa.string_view()),
    "large_list<large_string>": pa.large_list(pa.large_string()),
    # list_view is refused: test_list_view_columns_are_refused_with_a_way_out
}
TIMESTAMP_TYPES = {
    f"timestamp[{unit}, {tz}]": pa.timestamp(unit, tz=tz)
    for unit in ("s", "ms", "us")
    for tz in (None, "UTC", "+05:30", "America/New_York")
}
KINDS = [*STRING_TYPES, *INT_TYPES, "float64", "float32", "bool",
         *TIMESTAMP_TYPES, *LIST_TYPES, "null"]

#: microseconds per unit
PER_UNIT = {"s": 10**6, "ms": 10**3, "us": 1}

#: whole seconds from early in year 1 to late in year 9999: every one reads
#: back as a datetime in any time zone
FIRST_SECOND = int((dt.datetime(1, 1, 3, tzinfo=UTC) - EPOCH).total_seconds())
LAST_SECOND = int((dt.datetime(9999, 12, 29, tzinfo=UTC) - EPOCH).total_seconds())

#: Past 2**53 microseconds (about 285 years from 1970) the core rounds the
#: division exactly too (test_regression_sub_second_timestamp_far_from_1970),
#: so moments are drawn from the whole range a datetime has.
sub_second_moments = st.datetimes(
    min_value=dt.datetime(1, 1, 3), max_value=dt.datetime(9999, 12, 29),
    timezones=st.none() | st.just(UTC) | st.builds(
        dt.timezone, st.timedeltas(min_value=-dt.timedelta(hours=23),
                                   max_value=dt.timedelta(hours=23))),
)


def _microseconds(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def _count(moment: dt.datetime, unit: str) -> int | None:
    """`moment` in `unit`s since the epoch, where it is a whole number."""
    micros = _microseconds(moment)
    if micros % PER_UNIT[unit]:
        return None
    return micros // PER_UNIT[unit]


def _hinted(hints: list, accepts, base):
    """`base`, or often a hint of the kind `accepts` takes."""
    matching = [hint for hint in hints if accepts(hint)]
    return st.sampled_from(matching) | base if matching else base


def _value_strategy(kind: str, hints: list):
    if kind in STRING_TYPES:
        return _hinted(hints, lambda h: isinstance(h, str), strings)
    if kind in INT_TYPES:
        _, low, high = INT_TYPES[kind]
        edges = st.sampled_from([low, high, 0, 1, -1 if low else 2])
        return _hinted(hints, lambda h: type(h) is int and low <= h <= high,
                       st.integers(low, high) | edges)
    if kind == "float64":
        base = floats | st.floats()
        return _hinted(hints, lambda h: type(h) is float, base)
    if kind == "float32":
        # only floats with a float32: to_pylist() gives them back unchanged
        return st.floats(width=32)
    if kind == "bool":
        return st.booleans()
    if kind in TIMESTAMP_TYPES:
        unit = TIMESTAMP_TYPES[kind].unit
        per = PER_UNIT[unit]
        moments = [h for h in [*hints, *DATETIMES] if isinstance(h, dt.datetime)]
        counts = [c for c in (_count(m, unit) for m in moments) if c is not None]
        return st.one_of(
            st.sampled_from(counts),
            st.integers(FIRST_SECOND, LAST_SECOND).map(lambda s: s * 10**6 // per),
            sub_second_moments.map(lambda m: _microseconds(m) // per),
        )
    if kind in LIST_TYPES:
        lists = [v for v in LISTS if all(isinstance(i, str) for i in v)]
        base = (st.sampled_from(lists)
                | st.lists(st.sampled_from(TEXTS) | st.text(max_size=3), max_size=3))
        return _hinted(hints, lambda h: isinstance(h, list)
                       and all(isinstance(i, str) for i in h), base)
    raise AssertionError(kind)


def _array(kind: str, values: list) -> pa.Array:
    if kind == "null":
        return pa.nulls(len(values))
    if kind in TIMESTAMP_TYPES:
        return pa.array(values, pa.int64()).cast(TIMESTAMP_TYPES[kind])
    if kind in INT_TYPES:
        return pa.array(values, INT_TYPES[kind][0])
    if kind in ("float64", "float32", "bool"):
        return pa.array(values, {"float64": pa.float64(), "float32": pa.float32(),
                                 "bool": pa.bool_()}[kind])
    return pa.array(values, {**STRING_TYPES, **LIST_TYPES}[kind])


@st.composite
def columns(draw, size: int, hints: list) -> pa.Array:
    """A column of `size` values of one kind, now and then with nulls."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "null":
        return _array(kind, [None] * size)
    values = _value_strategy(kind, hints)
    if draw(st.booleans()):
        # about one null in four
        values = st.one_of(st.none(), values, values, values)
    return _array(kind, [draw(values) for _ in range(size)])


@st.composite
def user_tables(draw, hints: list, max_rows: int = 24):
    """
    Users as a Table or a RecordBatch: a column for some of the attributes,
    of any kind; now and then sliced (non-zero offsets) or in chunks that
    differ between the columns.
    """
    rows = draw(st.integers(0, max_rows))
    shape = draw(st.sampled_from(["table", "batch", "sliced", "sliced table",
                                  "chunked"]))
    before, after = 0, 0
    if shape.startswith("sliced"):
        before, after = draw(st.integers(1, 9)), draw(st.integers(0, 3))
    names = [name for name in COLUMN_NAMES if draw(st.integers(0, 2))]
    arrays = [draw(columns(before + rows + after, hints), label=name)
              for name in names]
    if shape == "sliced":
        batch = pa.RecordBatch.from_arrays(arrays, names=names)
        return batch.slice(before, rows)
    if shape == "sliced table":
        return pa.table(dict(zip(names, arrays))).slice(before, rows)
    if shape == "batch":
        return pa.RecordBatch.from_arrays(arrays, names=names)
    if shape == "chunked":
        split = {}
        for name, array in zip(names, arrays):
            cut = draw(st.integers(0, rows))
            split[name] = pa.chunked_array([array.slice(0, cut), array.slice(cut)],
                                           type=array.type)
        return pa.table(split)
    return pa.table(dict(zip(names, arrays)))


@st.composite
def batch_cases(draw, max_rows: int = 24):
    """A config, users, the keys to evaluate and the defaults."""
    document, hints = draw(configs(), label="document")
    config = flagstaff.Config.from_json(json.dumps(document, ensure_ascii=False))
    types = {key: setting["t"] for key, setting in document["f"].items()}
    users = draw(user_tables(hints, max_rows), label="users")
    keys = draw(st.none() | st.permutations(list(types)).flatmap(
        lambda order: st.integers(1, len(order)).map(lambda n: order[:n])),
        label="keys")
    defaults = {}
    for key in keys or types:
        choice = draw(st.integers(0, 3))
        if choice == 1:
            defaults[key] = DEFAULTS[types[key]]
        elif choice == 2:
            defaults[key] = draw(st.sampled_from(VALUES_BY_TYPE[types[key]][1]))
        elif choice == 3:
            defaults[key] = None
    return config, types, users, keys, defaults


def _as_table(users) -> pa.Table:
    return users if isinstance(users, pa.Table) else pa.Table.from_batches([users])


# ---- Properties ----------------------------------------------------------------


@pytest.mark.timeout(300)
@SETTINGS
@given(batch_cases())
def test_every_row_is_what_get_value_serves(case):
    config, types, users, keys, defaults = case
    one = evaluate_table(config, users, keys, threads=1, defaults=defaults,
                         variation_ids=True)
    four = evaluate_table(config, users, keys, threads=4, defaults=defaults,
                          variation_ids=True)

    assert_result_types(one, {key: types[key] for key in keys or types}, True)
    assert one.num_rows == users.num_rows
    assert four.equals(one)
    rows = _as_table(users).to_pylist()
    found = mismatches(config, rows, one, keys or list(types), defaults)
    assert not found, f"{len(found)} cells differ:\n" + "\n".join(found[:20])


class _CountingPool(ThreadPoolExecutor):
    """A ThreadPoolExecutor that records how many workers it was given."""

    workers: list[int] = []

    def __init__(self, max_workers=None, *args, **kwargs):
        _CountingPool.workers.append(max_workers)
        super().__init__(max_workers, *args, **kwargs)


@pytest.mark.timeout(300)
@settings(SETTINGS, max_examples=max(3, EXAMPLES // 40))
@given(batch_cases(max_rows=8))
def test_rows_split_across_threads_serve_what_one_thread_serves(case):
    # 40,000 rows: two tasks of more than _MIN_ROWS_PER_TASK rows each.
    config, types, users, keys, defaults = case
    users = _as_table(users)
    if users.num_rows == 0:
        users = pa.table({"Identifier": ["u"]})
    rows = 40_000
    tiled = pa.concat_tables([users] * -(-rows // users.num_rows)).slice(0, rows)
    assert rows // _table._MIN_ROWS_PER_TASK == 2

    one = evaluate_table(config, tiled, keys, threads=1, defaults=defaults,
                         variation_ids=True)
    _CountingPool.workers = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_table, "ThreadPoolExecutor", _CountingPool)
        four = evaluate_table(config, tiled, keys, threads=4, defaults=defaults,
                              variation_ids=True)

    assert _CountingPool.workers == [2]
    assert four.equals(one)
    keys = keys or list(types)
    expected = [expected_row(config, row_user(row), keys, defaults)
                for row in users.to_pylist()]
    found = mismatches(config, tiled.to_pylist(), one, keys, defaults, expected)
    assert not found, f"{len(found)} cells differ:\n" + "\n".join(found[:20])


def test_four_tasks_serve_every_row_of_the_main_matrix():
    # Four threads each get more than _MIN_ROWS_PER_TASK rows of random
    # users of ConfigCat's main matrix config (percentage options, rules).
    config = data.load_config(data.read_json("configs_v6/index.json")
                              ["testmatrix.csv"]["config"])
    rows = 4 * _table._MIN_ROWS_PER_TASK + 123
    rng = random.Random(20240401)
    # the values the config's rules look for, and others
    pool = ["a@configcat.com", "x@configcat.com", "b@example.com", "Hungary",
            "United Kingdom", "USA", "admin", "administrator", ""]

    def column(kind):
        cells = [rng.choice(pool) if rng.random() < 0.7 else None
                 for _ in range(rows)]
        return pa.array(cells, kind)

    users = pa.table({
        "Identifier": [f"user-{rng.randrange(10**9)}" for _ in range(rows)],
        "Email": column(pa.large_string()),
        "Country": column(pa.string()).dictionary_encode(),
        "Custom1": column(pa.string_view()),
    })
    one = evaluate_table(config, users, threads=1, variation_ids=True)
    _CountingPool.workers = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_table, "ThreadPoolExecutor", _CountingPool)
        four = evaluate_table(config, users, threads=4, variation_ids=True)

    assert _CountingPool.workers == [4]
    assert four.equals(one)
    found = mismatches(config, users.to_pylist(), one, config.keys(), {})
    assert not found, f"{len(found)} cells differ:\n" + "\n".join(found[:20])


# ---- ConfigCat's matrices ------------------------------------------------------


def _matrix_module():
    # The (matrix, config) pairs and cell counts of tests/core/test_matrices.py.
    where = Path(__file__).resolve().parent.parent / "core" / "test_matrices.py"
    spec = importlib.util.spec_from_file_location("_batch_matrix_cases", where)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MATRICES = _matrix_module()


def _matrix_table(header: list[str], rows: list[list[str]]) -> pa.Table:
    def cell(value):
        return None if value in ("", data.NULL) else value

    names = header[:4]
    columns = {"Identifier": [row[0] for row in rows]}
    for index in (1, 2, 3):
        columns[names[index]] = [cell(row[index]) for row in rows]
    return pa.table({name: pa.array(values, pa.string())
                     for name, values in columns.items()})


@pytest.mark.parametrize(("matrix", "config_file"), list(MATRICES._cases()))
def test_matrix_through_evaluate_table(matrix, config_file):
    header, rows = data.read_matrix(matrix)
    config = data.load_config(config_file)
    types = data.setting_types(config_file)
    keys = header[4:]
    by_variation = matrix == MATRICES.VARIATION_MATRIX

    # A "##null##" Identifier is "no User" at all, which a row of a table
    # cannot say (a row without an identifier is still a user): exactly
    # those rows are left out. An empty Identifier cell is the empty string.
    users = [row for row in rows if row[0] != data.NULL]
    skipped = len(rows) - len(users)
    result = evaluate_table(config, _matrix_table(header, users), keys,
                            variation_ids=by_variation)

    checked = 0
    found = []
    served = result.to_pylist()
    for number, (row, got) in enumerate(zip(users, served, strict=True)):
        for key, expected in zip(keys, row[4 : len(header)], strict=True):
            checked += 1
            if by_variation:
                actual = got[f"{key}:variation_id"]
                ok = actual == expected
            else:
                actual = got[key]
                ok = data.cell_matches(expected, actual, types[key])
            if not ok:
                found.append(f"row {number} {key}: expected {expected!r}, "
                             f"got {actual!r} (user {row[:4]!r})")

    assert checked + skipped * len(keys) == MATRICES.CHECKS[matrix]
    report = "\n".join(found[:50])
    assert not found, f"{len(found)} of {checked} cells differ:\n{report}"


# ---- Inputs the batch refuses --------------------------------------------------

SIMPLE = {"f": {
    "flag": {"t": 0, "v": {"b": True}, "i": "t",
             "r": [{"c": [{"u": {"a": "Custom1", "c": 34, "l": ["a"]}}],
                    "s": {"v": {"b": False}, "i": "f"}}]},
    "text": {"t": 1, "v": {"s": "x"}, "i": "x"},
    "whole": {"t": 2, "v": {"i": 7}, "i": "w"},
    "number": {"t": 3, "v": {"d": 2.5}, "i": "n"},
}}


@pytest.fixture(scope="module")
def simple() -> flagstaff.Config:
    return flagstaff.Config.from_json(json.dumps(SIMPLE))


def test_unknown_key(simple):
    users = pa.table({"Identifier": ["u"]})
    with pytest.raises(BatchError, match="'nope'"):
        evaluate_table(simple, users, ["flag", "nope"])
    with pytest.raises(BatchError, match="'nope'"):
        list(evaluate_batches(simple, users.to_batches(), ["nope"]))


@pytest.mark.parametrize(
    "column",
    [
        pa.array([{"a": 1}], pa.struct([("a", pa.int64())])),
        pa.array([dt.date(2024, 1, 1)], pa.date32()),
        pa.array([b"x"], pa.binary()),
        pa.array([dt.timedelta(1)], pa.duration("s")),
        pa.array([[1]], pa.list_(pa.int64())),
    ],
    ids=["struct", "date32", "binary", "duration", "list<int64>"],
)
def test_unsupported_column_type(simple, column):
    users = pa.table({"Identifier": ["u"], "Custom1": column})
    with pytest.raises(BatchError, match="'Custom1'"):
        evaluate_table(simple, users)


def test_list_with_null_item(simple):
    users = pa.table({"Identifier": ["u", "v"],
                      "Custom1": pa.array([["a"], ["b", None]])})
    with pytest.raises(BatchError, match="'Custom1'"):
        evaluate_table(simple, users)


def test_null_items_sliced_away_are_no_null_items(simple):
    # The visible rows hold no null item; the one outside the slice is not
    # part of the data. A large_list<large_string> column is not cast, so
    # its `values` still hold the whole child array.
    column = pa.array([["a", None], ["a"], ["b"]], pa.large_list(pa.large_string()))
    users = pa.table({"Identifier": ["u", "v", "w"], "Custom1": column}).slice(1)
    result = evaluate_table(simple, users, ["flag"])
    assert result.column("flag").to_pylist() == [False, True]


def test_uint64_past_int64(simple):
    users = pa.table({"Identifier": ["u"],
                      "Custom1": pa.array([2**64 - 1], pa.uint64())})
    with pytest.raises(BatchError, match="'Custom1'"):
        evaluate_table(simple, users)


def test_users_of_another_type(simple):
    with pytest.raises(BatchError, match="list"):
        evaluate_table(simple, [{"Identifier": "u"}])


@pytest.mark.parametrize(
    ("key", "default"),
    [("flag", "x"), ("flag", 1), ("text", 1), ("text", ["x"]), ("whole", "x"),
     ("whole", True), ("whole", 1.5), ("whole", 2**63), ("number", "x"),
     ("number", True)],
    ids=["bool-str", "bool-int", "str-int", "str-list", "int-str", "int-bool",
         "int-float", "int-past-int64", "float-str", "float-bool"],
)
def test_default_that_does_not_fit(simple, key, default):
    users = pa.table({"Identifier": ["u"]})
    with pytest.raises(BatchError, match=repr(key)):
        evaluate_table(simple, users, [key], defaults={key: default})


def test_whole_default_of_a_double_setting_is_its_float(simple):
    result = evaluate_table(simple, pa.table({"Identifier": ["u"]}), ["number"],
                            defaults={"number": 1})
    assert result.column("number").type == pa.float64()


def test_failing_rows_serve_the_default_and_no_variation():
    # A prerequisite on a missing flag fails the evaluation of every row.
    document = {"f": {"x": {"t": 2, "v": {"i": 0}, "i": "v", "r": [{
        "c": [{"p": {"f": "missing", "c": 0, "v": {"b": True}}}],
        "s": {"v": {"i": 1}, "i": "r"}}]}}}
    config = flagstaff.Config.from_json(json.dumps(document))
    users = pa.table({"Identifier": ["u", None]})
    for defaults, value in [({"x": -3}, -3), ({}, None), ({"x": None}, None)]:
        result = evaluate_table(config, users, defaults=defaults, variation_ids=True)
        assert result.to_pylist() == [{"x": value, "x:variation_id": None}] * 2
        assert mismatches(config, users.to_pylist(), result, ["x"], defaults) == []


# ---- Shapes of input -----------------------------------------------------------


@pytest.mark.parametrize(
    "users",
    [
        pa.table({"Identifier": pa.array([], pa.string())}),
        pa.schema([("Identifier", pa.string()), ("Custom1", pa.int64())]).empty_table(),
        pa.Table.from_batches([], pa.schema([("Identifier", pa.string())])),
        pa.RecordBatch.from_pydict({"Email": pa.array([], pa.large_string())}),
        pa.table({"Identifier": ["u", "v"]}).slice(2),
        pa.table({}),
    ],
    ids=["table", "empty-table", "no-chunks", "batch", "sliced-to-nothing",
         "no-columns"],
)
def test_zero_rows_give_empty_typed_columns(simple, users):
    result = evaluate_table(simple, users, variation_ids=True)
    assert result.num_rows == 0
    assert_result_types(result, {"flag": 0, "text": 1, "whole": 2, "number": 3}, True)


def test_no_keys_is_a_batch_error(simple):
    # Arrow has no table of rows without columns: nothing to evaluate is said.
    users = pa.table({"Identifier": ["u", "v", "w"]})
    with pytest.raises(BatchError, match="no setting keys"):
        evaluate_table(simple, users, [])


def _offset_columns(before: int, rows: int = 6) -> pa.RecordBatch:
    """
    Columns of every layout: `before` rows of padding, then `rows` rows that
    repeat a pattern of six.
    """
    def column(pattern, padding, kind):
        values = [padding] * before + [pattern[i % 6] for i in range(rows)]
        return pa.array(values, kind)

    texts = ["a", None, "b", "", "\u00fc", "a"]
    return pa.RecordBatch.from_pydict({
        "Identifier": column([f"id{i}" for i in range(6)], "pad", pa.string()),
        "Email": column(texts, "pad", pa.large_string()),
        "Country": column(texts, "pad", pa.string()).dictionary_encode(),
        "Custom1": column([["a"], None, ["b", "a"], [], ["c"], ["a"]], ["pad"],
                          pa.list_(pa.string())),
        "Custom2": column([True, None, False, True, False, True], None, pa.bool_()),
        "Missing": column([1, None, 3, 4, -5, 6], 0, pa.int32()),
        "Unused": column([1.5, None, 3.0, 4.0, 5.0, 6.0], None, pa.float64()),
    })


@pytest.mark.parametrize("before", [1, 3, 5])
def test_sliced_arrays(simple, before):
    users = _offset_columns(before).slice(before)
    assert all(column.offset == before for column in users.columns)
    result = evaluate_table(simple, users, variation_ids=True)
    assert mismatches(simple, users.to_pylist(), result, simple.keys(), {}) == []
    # Custom1 holds "a" in rows 0, 2 and 5 of the slice
    assert result.column("flag").to_pylist() == [False, True, False, True, True, False]


def test_list_child_with_an_offset(simple):
    # The child strings of the list column start at an offset of their own.
    items = pa.array(["skip", "skip", "a", "b", "a"])
    column = pa.ListArray.from_arrays(pa.array([0, 1, 1, 3]), items.slice(2))
    assert column.values.offset == 2
    users = pa.table({"Identifier": ["u", "v", "w"], "Custom1": column})
    assert evaluate_table(simple, users, ["flag"]).column("flag").to_pylist() == [
        False, True, False]


def test_chunked_tables(simple):
    batch = _offset_columns(0, 12)
    chunked = pa.table({
        name: pa.chunked_array([array.slice(0, cut), array.slice(cut, 5),
                                array.slice(cut + 5)])
        for cut, (name, array) in enumerate(zip(batch.schema.names, batch.columns))
    })
    assert chunked.column("Unused").num_chunks == 3
    result = evaluate_table(simple, chunked, variation_ids=True)
    assert result.equals(evaluate_table(simple, batch, variation_ids=True))
    assert mismatches(simple, chunked.to_pylist(), result, simple.keys(), {}) == []


def test_record_batch_and_default_threads(simple):
    batch = _offset_columns(0, 12)
    result = evaluate_table(simple, batch)
    assert isinstance(result, pa.Table)
    assert result.equals(evaluate_table(simple, pa.Table.from_batches([batch]),
                                        threads=1))


# ---- Streaming -----------------------------------------------------------------


def test_evaluate_batches_streams(simple):
    sizes = [7, 0, 3, 12, 1]
    pulled = []

    def batches():
        for number, size in enumerate(sizes):
            pulled.append(number)
            yield _offset_columns(0, size)

    results = evaluate_batches(simple, batches(), ["flag", "whole"],
                               defaults={"whole": -1}, variation_ids=True)
    first = next(results)
    # one batch in, one batch out: the rest have not been read
    assert pulled == [0]
    rest = list(results)
    assert pulled == [0, 1, 2, 3, 4]
    assert [batch.num_rows for batch in [first, *rest]] == sizes
    assert all(isinstance(batch, pa.RecordBatch) for batch in rest)

    whole = pa.Table.from_batches(list(batches()))
    assert pa.Table.from_batches([first, *rest]).equals(evaluate_table(
        simple, whole, ["flag", "whole"], defaults={"whole": -1}, variation_ids=True))


# ---- Regressions: mismatches found by the tests above --------------------------


def test_regression_sub_second_timestamp_far_from_1970():
    # A timestamp's seconds are its microseconds over 10**6, correctly
    # rounded, as timedelta.total_seconds() gives them. Past 2**53
    # microseconds (about 285 years from 1970) rounding the count to a
    # double first and then dividing can land one ulp off: 2300-01-01
    # 00:00:00.000001 is 10413792000.000002 s, not 10413792000.0.
    moment = dt.datetime(2300, 1, 1, 0, 0, 0, 1)
    seconds = (moment - dt.datetime(1970, 1, 1)).total_seconds()
    assert repr(seconds) == "10413792000.000002"
    document = {"f": {"f": {"t": 1, "v": {"s": "other"}, "i": "o", "r": [{
        "c": [{"u": {"a": "Custom1", "c": 28, "s": repr(seconds)}}],
        "s": {"v": {"s": "match"}, "i": "m"}}]}}}
    config = flagstaff.Config.from_json(json.dumps(document))
    users = pa.table({"Identifier": ["u"],
                      "Custom1": pa.array([moment], pa.timestamp("us"))})
    assert config.get_value("f", None, row_user(users.to_pylist()[0])) == "match"
    assert evaluate_table(config, users).column("f").to_pylist() == ["match"]


def test_list_view_columns_are_refused_with_a_way_out():
    # pyarrow (26.0.1) casts a list_view array to a large_list whose last
    # offset is wrong (0 here, where the last list ends at 2); reading such
    # buffers would serve wrong values or read past them, so the batch
    # refuses list views and says how to pass the column instead.
    document = {"f": {"f": {"t": 1, "v": {"s": "other"}, "i": "o", "r": [{
        "c": [{"u": {"a": "Custom1", "c": 34, "l": ["b"]}}],
        "s": {"v": {"s": "match"}, "i": "m"}}]}}}
    config = flagstaff.Config.from_json(json.dumps(document))
    views = pa.array([["a"], ["b"]], pa.list_view(pa.string()))
    users = pa.table({"Identifier": ["u", "v"], "Custom1": views})
    with pytest.raises(BatchError, match="'Custom1'.*large_list"):
        evaluate_table(config, users)
    lists = pa.array(views.to_pylist(), pa.large_list(pa.string()))
    users = pa.table({"Identifier": ["u", "v"], "Custom1": lists})
    assert evaluate_table(config, users).column("f").to_pylist() == ["other", "match"]


@pytest.mark.parametrize(
    "ticks", [1, -1, 1_700_000_000_123_456_789, -6_200_000_000_987_654_321,
              2**62 + 12_345, 9_007_199_254_740_993],
    ids=["one", "minus-one", "2023", "year-1773", "far-future", "past-2**53"],
)
def test_nanosecond_timestamps_are_their_exact_seconds(ticks):
    # Nanoseconds are not truncated to microseconds: a row's seconds are its
    # ticks over 10**9, rounded once (the rational value, correctly rounded).
    from fractions import Fraction

    from flagstaff.core._core import canonical_string

    seconds = float(Fraction(ticks, 10**9))
    document = {"f": {"f": {"t": 1, "v": {"s": "other"}, "i": "o", "r": [{
        "c": [{"u": {"a": "Custom1", "c": 28, "s": canonical_string(seconds)}}],
        "s": {"v": {"s": "match"}, "i": "m"}}]}}}
    config = flagstaff.Config.from_json(json.dumps(document))
    users = pa.table({"Identifier": ["u"],
                      "Custom1": pa.array([ticks], pa.timestamp("ns"))})
    assert evaluate_table(config, users).column("f").to_pylist() == ["match"]
