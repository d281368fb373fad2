"""
What ``flagstaff evaluate`` and the Dask and Spark adapters share: the config
compiled once per process from its bytes, the columns a set of settings
reads, the output schema, and the evaluation of one piece of a larger input.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import pyarrow as pa

from ..core import Config
from . import BatchError, evaluate_table

__all__ = (
    "attribute_columns",
    "check_columns",
    "compilations",
    "compiled",
    "config_bytes",
    "digest",
    "evaluate_part",
    "output_schema",
    "read_attributes",
    "users_of",
)

#: how many configs a worker process keeps compiled
_KEEP = 8

_lock = threading.Lock()
_configs: OrderedDict[str, Config] = OrderedDict()

#: per config digest, how often this process compiled it (the tests read it
#: on the workers)
compilations: Counter[str] = Counter()


def config_bytes(config_json: Union[bytes, str]) -> bytes:
    """
    The config's JSON text as bytes, to ship to workers.

    :raises TypeError: for anything but bytes or str, a compiled
        :class:`~flagstaff.Config` included: it cannot be turned back into
        the text it came from.
    """
    if isinstance(config_json, str):
        return config_json.encode("utf-8")
    if isinstance(config_json, (bytes, bytearray, memoryview)):
        return bytes(config_json)
    if isinstance(config_json, Config):
        raise TypeError(
            "pass the config's JSON text (bytes or str), not a compiled Config: "
            "the text is what travels to the workers (read the file's bytes, or "
            "take Client.snapshot().text)"
        )
    raise TypeError(
        f"a config is JSON text (bytes or str), not {type(config_json).__name__}"
    )


def digest(raw: bytes) -> str:
    """
    The name of a config's bytes in the per-process cache.
    """
    return hashlib.sha256(raw).hexdigest()


def compiled(raw: bytes) -> Config:
    """
    The config of these bytes, compiled on the first call in this process and
    taken from a small cache after that.
    """
    name = digest(raw)
    with _lock:
        config = _configs.get(name)
        if config is not None:
            _configs.move_to_end(name)
            return config
        # Compiling under the lock: two threads of one worker that start
        # together compile once, not twice.
        config = Config.from_json(raw)
        compilations[name] += 1
        _configs[name] = config
        while len(_configs) > _KEEP:
            _configs.popitem(last=False)
        return config


def read_attributes(config: Config, keys: Optional[Sequence[str]]) -> set[str]:
    """
    The user attributes that evaluating `keys` can read: those of their
    conditions, of the segments and prerequisite flags they use, and the
    attribute their percentage options hash (``Identifier`` by default).
    Reading only these columns of a wide table saves the rest.
    """
    settings = config.model.settings
    names = {"Identifier"}
    pending = list(config.keys() if keys is None else keys)
    seen: set[str] = set()
    while pending:
        key = pending.pop()
        entry = settings.get(key)
        if key in seen or entry is None or entry.setting is None:
            continue
        seen.add(key)
        setting = entry.setting
        if setting.a is not None:
            names.add(setting.a)
        for rule in setting.r:
            for condition in rule.c:
                if condition.u is not None and condition.u.a is not None:
                    names.add(condition.u.a)
                if condition.p is not None and condition.p.f is not None:
                    pending.append(condition.p.f)
                if condition.s is not None:
                    names.update(_segment_attributes(entry.segments, condition.s.s))
    return names


def _segment_attributes(segments: Sequence[Any], index: Optional[int]) -> set[str]:
    if index is None or not 0 <= index < len(segments):
        return set()
    segment = segments[index].segment
    if segment is None:
        return set()
    return {condition.a for condition in segment.r if condition.a is not None}


def output_schema(
    config: Config, keys: Optional[Sequence[str]], variation_ids: bool = False
) -> pa.Schema:
    """
    The schema :func:`~flagstaff.batch.evaluate_table` gives these keys.

    :raises BatchError: for an unknown key.
    """
    users = pa.table({"Identifier": pa.array([], pa.string())})
    return evaluate_table(
        config, users, keys, threads=1, variation_ids=variation_ids
    ).schema


def check_columns(
    available: Sequence[str],
    keep: Sequence[str],
    schema: pa.Schema,
    where: str,
    identifier: str = "Identifier",
    hint: str = "",
) -> None:
    """
    Checks the columns of an input against what is asked of it.

    :raises BatchError: when the input has no `identifier` column (every
        user would get the same percentage bucket: surely a mistake), when
        a column to keep is not in the input, or has the name of an output
        column.
    """
    if identifier not in available:
        raise BatchError(
            f"no identifier column {identifier!r} in {where}: every user needs "
            "an Identifier, it is what percentage options hash; the columns "
            f"are {', '.join(map(repr, available)) or 'none'}{hint}"
        )
    missing = [name for name in keep if name not in available]
    if missing:
        raise BatchError(
            f"no column {', '.join(map(repr, missing))} in {where}; it has "
            f"{', '.join(map(repr, available)) or 'no columns'}"
        )
    clashing = [name for name in keep if name in schema.names]
    if clashing:
        raise BatchError(
            f"column {', '.join(map(repr, clashing))} to keep has the name of "
            "an output column"
        )


def attribute_columns(
    available: Sequence[str], attributes: set[str], identifier: str = "Identifier"
) -> dict[str, str]:
    """
    Which column holds each user attribute to read: the attribute of the
    same name, but ``Identifier`` from the column `identifier`. Attributes
    that no column holds are missing for every user.
    """
    columns = {name: name for name in available if name in attributes}
    columns.pop("Identifier", None)
    if identifier in available:
        columns["Identifier"] = identifier
    return columns


def users_of(
    part: Union[pa.Table, pa.RecordBatch], attributes: Mapping[str, str]
) -> pa.Table:
    """
    The users of `part`: a table of as many rows, with one column per user
    attribute (`attributes` maps each to the column of `part` holding it).
    """
    if not attributes:
        return pa.table({"Identifier": pa.nulls(part.num_rows, pa.string())})
    columns = [part.column(column) for column in attributes.values()]
    return pa.Table.from_arrays(columns, names=list(attributes))


def evaluate_part(
    config: Config,
    part: Union[pa.Table, pa.RecordBatch],
    attributes: Mapping[str, str],
    keys: Sequence[str],
    *,
    keep: Sequence[str] = (),
    threads: Optional[int] = None,
    defaults: Optional[Mapping[str, Any]] = None,
    variation_ids: bool = False,
) -> pa.Table:
    """
    One part of a larger input evaluated: the columns to keep, then one per
    key (and variation id).
    """
    result = evaluate_table(
        config,
        users_of(part, attributes),
        keys,
        threads=threads,
        defaults=defaults,
        variation_ids=variation_ids,
    )
    if not keep:
        return result
    kept = [part.column(name) for name in keep]
    return pa.Table.from_arrays(
        [*kept, *result.columns], names=[*keep, *result.column_names]
    )
