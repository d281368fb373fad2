"""
Dask: settings evaluated over the partitions of a Dask DataFrame by the same
compiled function as :func:`~flagstaff.batch.evaluate_table`.

The config travels as its JSON bytes, once per worker (a single task of the
graph that every partition depends on), and each worker process compiles it
once. Needs ``pip install 'flagstaff[dask]'``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import pyarrow as pa

try:
    import dask
    import dask.dataframe as dd
    import pandas as pd
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "flagstaff.batch.dask needs Dask: pip install 'flagstaff[dask]'"
    ) from exc

from ..core import Config
from ._shared import (
    attribute_columns,
    check_columns,
    compiled,
    config_bytes,
    digest,
    evaluate_part,
    output_schema,
    read_attributes,
)

__all__ = ("evaluate",)

# Served values as pandas' nullable types: a row that serves no value (a
# null default) stays missing instead of turning a bool column into objects.
_PANDAS_TYPES = {
    pa.bool_(): pd.BooleanDtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.float64(): pd.Float64Dtype(),
    pa.string(): pd.StringDtype(),
    pa.large_string(): pd.StringDtype(),
}


def evaluate(
    frame: "dd.DataFrame",
    config_json: Union[bytes, str],
    keys: Optional[Sequence[str]] = None,
    *,
    threads: int = 1,
    defaults: Optional[Mapping[str, Any]] = None,
    variation_ids: bool = False,
    keep: Sequence[str] = (),
    identifier: str = "Identifier",
) -> "dd.DataFrame":
    """
    Evaluates settings for every row of a Dask DataFrame of users, partition
    by partition on the workers.

    The columns of `frame` are user attributes, as for
    :func:`~flagstaff.batch.evaluate_table`; only those that the settings
    read are converted to Arrow. Nothing is computed until the result is.
    A list-of-strings attribute wants an Arrow list column
    (``pd.ArrowDtype(pa.list_(pa.string()))``, as ``dd.read_parquet``
    gives): ``dd.from_pandas`` turns an object column of Python lists into
    their text (Dask's ``dataframe.convert-string``).

    :param frame: the users, one per row.
    :param config_json: the config's JSON text (bytes or str), as read from
        a file or ``Client.snapshot().text``: these bytes are what reach the
        workers, to be compiled there once per process.
    :param keys: the settings to evaluate (default: all of them).
    :param threads: threads per partition (default 1: Dask runs partitions
        in parallel already).
    :param defaults: per key, the value of rows that cannot be evaluated
        (default: missing).
    :param variation_ids: also give each key a ``<key>:variation_id`` column.
    :param keep: columns of `frame` to copy to the result before the keys'.
    :param identifier: the column of the users' identifiers.
    :return: a lazy Dask DataFrame with the partitions and index of `frame`:
        the columns to keep, then one per key of pandas' nullable type for
        its setting type (``boolean``, ``string``, ``Int64``, ``Float64``).
    :raises BatchError: for an unknown key, a missing column or a column to
        keep that clashes with a key.
    :raises ConfigError: for JSON text that is no config.
    :raises TypeError: for a config given as anything but its JSON text.
    """
    raw = config_bytes(config_json)
    config = Config.from_json(raw)
    keys = config.keys() if keys is None else list(keys)
    schema = output_schema(config, keys, variation_ids)
    available = [str(name) for name in frame.columns]
    keep = list(keep)
    check_columns(
        available, keep, schema, "the frame", identifier, " (identifier= names another)"
    )
    attributes = attribute_columns(available, read_attributes(config, keys), identifier)
    columns = list(dict.fromkeys([*attributes.values(), *keep]))

    # One task holds the bytes; each worker fetches them once and keeps them
    # while its partitions need them.
    shipped = dask.delayed(raw, name=f"flagstaff-config-{digest(raw)[:16]}")
    meta = _meta(frame._meta, schema, keep)
    return frame[columns].map_partitions(
        _evaluate_partition,
        shipped,
        attributes,
        keys,
        keep,
        threads,
        defaults,
        variation_ids,
        meta=meta,
    )


def _meta(
    frame_meta: "pd.DataFrame", schema: pa.Schema, keep: Sequence[str]
) -> "pd.DataFrame":
    result = _to_pandas(schema.empty_table())
    result.index = frame_meta.index[:0]
    if not keep:
        return result
    return pd.concat([frame_meta[list(keep)], result], axis=1)


def _to_pandas(table: pa.Table) -> "pd.DataFrame":
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get)


def _evaluate_partition(
    partition: "pd.DataFrame",
    raw: bytes,
    attributes: dict[str, str],
    keys: list[str],
    keep: list[str],
    threads: int,
    defaults: Optional[Mapping[str, Any]],
    variation_ids: bool,
) -> "pd.DataFrame":
    """One partition evaluated on a worker."""
    config = compiled(raw)
    columns = list(dict.fromkeys(attributes.values()))
    users = pa.Table.from_pandas(partition[columns], preserve_index=False)
    result = _to_pandas(
        evaluate_part(
            config,
            users,
            attributes,
            keys,
            threads=threads,
            defaults=defaults,
            variation_ids=variation_ids,
        )
    )
    result.index = partition.index
    if not keep:
        return result
    return pd.concat([partition[keep], result], axis=1)
