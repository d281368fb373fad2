"""
Spark: settings evaluated over a Spark DataFrame with ``mapInArrow``, by the
same compiled function as :func:`~flagstaff.batch.evaluate_table`.

The config travels as its JSON bytes in a broadcast variable, once per
executor, and each Python worker process compiles it once. Needs
``pip install 'flagstaff[spark]'``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Union

import pyarrow as pa

try:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import types as st
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "flagstaff.batch.spark needs PySpark: pip install 'flagstaff[spark]'"
    ) from exc

from ..core import Config
from ._shared import (
    attribute_columns,
    check_columns,
    compiled,
    config_bytes,
    evaluate_part,
    output_schema,
    read_attributes,
)

__all__ = ("evaluate",)

_SPARK_TYPES = {
    pa.bool_(): st.BooleanType(),
    pa.string(): st.StringType(),
    pa.int64(): st.LongType(),
    pa.float64(): st.DoubleType(),
}


def evaluate(
    df: DataFrame,
    config_json: Union[bytes, str],
    keys: Optional[Sequence[str]] = None,
    *,
    threads: int = 1,
    defaults: Optional[Mapping[str, Any]] = None,
    variation_ids: bool = False,
    keep: Sequence[str] = (),
    identifier: str = "Identifier",
) -> DataFrame:
    """
    Evaluates settings for every row of a Spark DataFrame of users, batch by
    batch on the executors.

    The columns of `df` are user attributes, as for
    :func:`~flagstaff.batch.evaluate_table`; only those that the settings
    read (and those to keep) go to Python. Nothing runs until an action.

    :param df: the users, one per row.
    :param config_json: the config's JSON text (bytes or str), as read from
        a file or ``Client.snapshot().text``: these bytes are broadcast, and
        compiled once per Python worker process.
    :param keys: the settings to evaluate (default: all of them).
    :param threads: threads per batch (default 1: Spark runs tasks in
        parallel already).
    :param defaults: per key, the value of rows that cannot be evaluated
        (default: null).
    :param variation_ids: also give each key a ``<key>:variation_id`` column.
    :param keep: columns of `df` to copy to the result before the keys'.
    :param identifier: the column of the users' identifiers.
    :return: a DataFrame of the columns to keep, then one per key: boolean,
        string, bigint or double by setting type.
    :raises BatchError: for an unknown key, a missing column or a column to
        keep that clashes with a key.
    :raises ConfigError: for JSON text that is no config.
    :raises TypeError: for a config given as anything but its JSON text.
    """
    raw = config_bytes(config_json)
    config = Config.from_json(raw)
    keys = config.keys() if keys is None else list(keys)
    schema = output_schema(config, keys, variation_ids)
    available = list(df.columns)
    keep = list(keep)
    check_columns(
        available,
        keep,
        schema,
        "the DataFrame",
        identifier,
        " (identifier= names another)",
    )
    attributes = attribute_columns(available, read_attributes(config, keys), identifier)
    columns = list(dict.fromkeys([*attributes.values(), *keep]))

    result_schema = st.StructType(
        [
            *(df.schema[name] for name in keep),
            *(
                st.StructField(field.name, _SPARK_TYPES[field.type], True)
                for field in schema
            ),
        ]
    )
    shipped = _ship(df.sparkSession, raw)

    def evaluate_partition(
        batches: Iterator[pa.RecordBatch],
    ) -> Iterator[pa.RecordBatch]:
        config = compiled(shipped.value)
        for batch in batches:
            table = evaluate_part(
                config,
                batch,
                attributes,
                keys,
                keep=keep,
                threads=threads,
                defaults=defaults,
                variation_ids=variation_ids,
            )
            yield from table.to_batches()

    selected = df.select(*(df[name] for name in columns))
    return selected.mapInArrow(evaluate_partition, result_schema)


class _Inline:
    """The bytes themselves, for a session that broadcasts nothing."""

    def __init__(self, value: bytes) -> None:
        self.value = value


def _ship(session: SparkSession, raw: bytes) -> Any:
    try:
        context = session.sparkContext
    except Exception:
        # XXX: Spark Connect cannot broadcast; the bytes go with the function.
        return _Inline(raw)
    return context.broadcast(raw)
