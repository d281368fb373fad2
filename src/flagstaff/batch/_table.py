"""
Arrow tables of users in, Arrow tables of served values out, evaluated by
the compiled core over the columns' buffers on every core of the machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Union

from .._errors import FlagError
from ..core import Config
from ..core._core import BatchPlan

try:
    import pyarrow as pa
    import pyarrow.compute as pc
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "flagstaff.batch reads and writes Arrow: install it with "
        "pip install 'flagstaff[arrow]'"
    ) from exc

__all__ = ("BatchError", "evaluate_batches", "evaluate_table")

# Column layouts the core reads (see BatchPlan in the core).
_NONE, _STRING, _LARGE_STRING, _INT64, _FLOAT64, _BOOL, _TIMESTAMP, _LIST = range(8)

# Each thread takes at least this many rows: fewer cost more to hand out
# than to evaluate.
_MIN_ROWS_PER_TASK = 16_384

_ARROW_TYPES = {0: pa.bool_(), 1: pa.string(), 2: pa.int64(), 3: pa.float64()}

Users = Union["pa.Table", "pa.RecordBatch"]


class BatchError(FlagError, ValueError):
    """
    Batch input that cannot be evaluated: an unknown setting key, or a user
    column of a type that is no user attribute.
    """


def _address(buffer: Optional["pa.Buffer"]) -> int:
    return buffer.address if buffer is not None else 0


def _normalised(name: str, array: "pa.Array") -> "pa.Array":
    """The column in one of the layouts the core reads."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _normalised(name, array.dictionary_decode())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return array
    if pa.types.is_string_view(kind):
        return array.cast(pa.large_string())
    if pa.types.is_boolean(kind) or pa.types.is_null(kind):
        return array
    if pa.types.is_integer(kind):
        try:
            return array.cast(pa.int64())
        except pa.ArrowInvalid as exc:
            raise BatchError(f"column {name!r}: {exc}") from exc
    if pa.types.is_floating(kind):
        return array.cast(pa.float64())
    if pa.types.is_timestamp(kind):
        # Ticks since the epoch, UTC underneath whatever the time zone:
        # seconds and milliseconds widen exactly to microseconds.
        if kind.unit == "ns":
            return array
        return array.cast(pa.timestamp("us", tz=kind.tz))
    if pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        raise BatchError(
            f"column {name!r} is {kind}: cast list views to large_list first"
        )
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)
            or pa.types.is_fixed_size_list(kind)) and (
            pa.types.is_string(kind.value_type)
            or pa.types.is_large_string(kind.value_type)
            or pa.types.is_string_view(kind.value_type)):
        array = array.cast(pa.large_list(pa.large_string()))
        if pc.list_flatten(array).null_count:
            raise BatchError(f"column {name!r}: a list attribute holds no null items")
        return array
    raise BatchError(
        f"column {name!r} is {kind}: a user attribute is a string, an integer, "
        "a float, a bool, a timestamp or a list of strings"
    )


def _column_spec(array: "pa.Array") -> tuple:
    """How the core finds the column's values: layout and buffer addresses."""
    kind = array.type
    buffers = array.buffers()
    valid = _address(buffers[0]) if array.null_count else 0
    if pa.types.is_null(kind):
        return (_NONE, 0, 0, 0, 0, 0, 0)
    if pa.types.is_string(kind):
        return (_STRING, array.offset, valid, _address(buffers[1]), _address(buffers[2]), 0, 0)
    if pa.types.is_large_string(kind):
        return (_LARGE_STRING, array.offset, valid, _address(buffers[1]),
                _address(buffers[2]), 0, 0)
    if pa.types.is_boolean(kind):
        return (_BOOL, array.offset, valid, _address(buffers[1]), 0, 0, 0)
    if pa.types.is_integer(kind):
        return (_INT64, array.offset, valid, _address(buffers[1]), 0, 0, 0)
    if pa.types.is_floating(kind):
        return (_FLOAT64, array.offset, valid, _address(buffers[1]), 0, 0, 0)
    if pa.types.is_timestamp(kind):
        per_second = 10**9 if kind.unit == "ns" else 10**6
        return (_TIMESTAMP, array.offset, valid, _address(buffers[1]), per_second, 0, 0)
    items = array.values
    item_buffers = items.buffers()
    return (_LIST, array.offset, valid, _address(buffers[1]), _address(item_buffers[1]),
            _address(item_buffers[2]), items.offset)


def _setting_type(config: Config, key: str) -> int:
    setting = config.model.settings[key].setting
    kind = setting.t if setting is not None else None
    return kind if kind in _ARROW_TYPES else 1


def _fits(default: Any, kind: int) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return kind == 0
    if kind == 2:
        return isinstance(default, int) and -2**63 <= default < 2**63
    if kind == 3:
        return isinstance(default, (int, float))
    return isinstance(default, (bool, str, int, float)[kind])


def _typed_values(values: list, kind: int, default: Any, key: str) -> "pa.Array":
    """The config's values as an Arrow array of the setting's type, with the
    default after them; values of other settings' types are null here."""
    if not _fits(default, kind):
        raise BatchError(
            f"the default for {key!r}, {default!r}, does not fit its "
            f"{_ARROW_TYPES[kind]} column"
        )
    python_type = (bool, str, int, float)[kind]
    typed = [value if type(value) is python_type else None for value in values]
    return pa.array([*typed, default], _ARROW_TYPES[kind])


def _int32(buffer: bytearray, rows: int) -> "pa.Array":
    return pa.Array.from_buffers(pa.int32(), rows, [None, pa.py_buffer(buffer)])


def _checked_keys(config: Config, keys: Optional[Sequence[str]]) -> list[str]:
    if keys is None:
        return config.keys()
    keys = list(keys)
    if not keys:
        raise BatchError("no setting keys to evaluate")
    unknown = [key for key in keys if key not in config]
    if unknown:
        raise BatchError(
            f"no setting {', '.join(map(repr, unknown))} in the config; it has "
            f"{', '.join(map(repr, config.keys()))}"
        )
    return keys


def _evaluate(config: Config, batch: "pa.RecordBatch", keys: list[str],
              threads: int, defaults: Mapping[str, Any],
              variation_ids: bool) -> "pa.RecordBatch":
    # Only the columns the config reads matter (and need a usable type).
    read = set(config.attributes())
    arrays = {name: _normalised(name, batch.column(index))
              for index, name in enumerate(batch.schema.names) if name in read}
    specs = {name: _column_spec(array) for name, array in arrays.items()}
    rows = batch.num_rows
    plan = BatchPlan(config, specs, keys, rows, variation_ids)

    # The plan reads `arrays` in place: they stay referenced until it is done.
    tasks = max(1, min(threads, rows // _MIN_ROWS_PER_TASK))
    bounds = [rows * part // tasks for part in range(tasks + 1)]
    if tasks == 1:
        plan.run(0, rows)
    else:
        with ThreadPoolExecutor(tasks, thread_name_prefix="flagstaff-batch") as pool:
            for done in [pool.submit(plan.run, bounds[part], bounds[part + 1])
                         for part in range(tasks)]:
                done.result()
    del arrays

    names, columns = [], []
    variation_table = pa.array([*plan.variation_names, None], pa.string())
    for index, key in enumerate(keys):
        values = _typed_values(plan.values, _setting_type(config, key),
                               defaults.get(key), key)
        names.append(key)
        columns.append(values.take(_int32(plan.slots[index], rows)))
        if variation_ids:
            names.append(f"{key}:variation_id")
            columns.append(variation_table.take(_int32(plan.variations[index], rows)))
    return pa.RecordBatch.from_arrays(columns, names=names)


def evaluate_batches(
    config: Config,
    batches: Iterable["pa.RecordBatch"],
    keys: Optional[Sequence[str]] = None,
    *,
    threads: Optional[int] = None,
    defaults: Optional[Mapping[str, Any]] = None,
    variation_ids: bool = False,
) -> Iterator["pa.RecordBatch"]:
    """
    Evaluates record batches of users one after the other, in memory
    bounded by the batch size: see :func:`evaluate_table`.

    :return: an iterator of record batches, one per batch of users.
    """
    keys = _checked_keys(config, keys)
    threads = threads or os.cpu_count() or 1
    for batch in batches:
        yield _evaluate(config, batch, keys, threads, defaults or {}, variation_ids)


def evaluate_table(
    config: Config,
    users: Users,
    keys: Optional[Sequence[str]] = None,
    *,
    threads: Optional[int] = None,
    defaults: Optional[Mapping[str, Any]] = None,
    variation_ids: bool = False,
) -> "pa.Table":
    """
    Evaluates settings for every user in `users`, one row per user.

    Each column of `users` is the user attribute of its name (``Identifier``,
    ``Email``, ``Country``, or a custom one): strings (string, large_string,
    string_view, dictionary), integers, floats, bools, timestamps or lists of
    strings; a null is a missing attribute. The rows are evaluated by the
    compiled core without the GIL, split across `threads` threads.

    :param config: the config to evaluate.
    :param users: a pyarrow Table or RecordBatch of users.
    :param keys: the settings to evaluate (default: all of them).
    :param threads: how many threads to use (default: one per core).
    :param defaults: per key, the value of rows that cannot be evaluated
        (default: null).
    :param variation_ids: also give each key a ``<key>:variation_id`` column.
    :return: a pyarrow Table with one column per key, typed by setting type
        (bool, string, int64, float64): row for row what ``config.get_value``
        serves the user.
    :raises BatchError: for an unknown key or an unusable column.
    """
    if isinstance(users, pa.Table):
        batches = users.combine_chunks().to_batches() or [
            pa.RecordBatch.from_pylist([], schema=users.schema)]
    elif isinstance(users, pa.RecordBatch):
        batches = [users]
    else:
        raise BatchError(f"users are a pyarrow Table or RecordBatch, not {type(users).__name__}")
    results = list(evaluate_batches(config, batches, keys, threads=threads,
                                    defaults=defaults, variation_ids=variation_ids))
    return pa.Table.from_batches(results)
