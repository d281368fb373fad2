"""
The Spark adapter with a ``local[2]`` session on 127.0.0.1: ``mapInArrow``
over the users gives what ``evaluate_table`` gives on the same rows.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pyarrow as pa
import pytest
from batch_users import ONBOARDING_RAW, matrix, random_users
from pyspark import sql as pyspark_sql

import flagstaff
from flagstaff.batch import BatchError, evaluate_table
from flagstaff.batch import spark as batch_spark

pytestmark = [
    pytest.mark.spark,
    # PySpark 4.x warns of pandas 3 on every Arrow call, though mapInArrow
    # uses no pandas.
    pytest.mark.filterwarnings(
        "ignore:PySpark does not yet fully support pandas:FutureWarning"
    ),
]

KEYS = ["onboardingFeature", "premiumBadge"]


@pytest.fixture(scope="module")
def spark() -> Iterator["pyspark_sql.SparkSession"]:
    # The Python workers run this interpreter (and so import this flagstaff).
    saved = {
        name: os.environ.get(name) for name in ("PYSPARK_PYTHON", "SPARK_LOCAL_IP")
    }
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("flagstaff-tests")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def frame_of(spark, users: pa.Table, partitions: int = 4):
    return spark.createDataFrame(
        users.to_pylist(), schema=_ddl(users.schema)
    ).repartition(partitions)


def _ddl(schema: pa.Schema) -> str:
    names = {pa.string(): "string", pa.int64(): "bigint"}
    return ", ".join(f"`{field.name}` {names[field.type]}" for field in schema)


def collected(df, schema: pa.Schema) -> pa.Table:
    """The rows of `df` in Arrow (``toArrow`` is new in PySpark 4)."""
    return pa.Table.from_pylist([row.asDict() for row in df.collect()], schema=schema)


def test_equals_evaluate_table(spark) -> None:
    users = random_users(3000)
    df = frame_of(spark, users)

    out = batch_spark.evaluate(
        df,
        ONBOARDING_RAW,
        KEYS,
        variation_ids=True,
        keep=["Identifier"],
        defaults={"premiumBadge": True},
    )

    assert [(f.name, f.dataType.simpleString()) for f in out.schema.fields] == [
        ("Identifier", "string"),
        ("onboardingFeature", "string"),
        ("onboardingFeature:variation_id", "string"),
        ("premiumBadge", "boolean"),
        ("premiumBadge:variation_id", "string"),
    ]
    config = flagstaff.Config.from_json(ONBOARDING_RAW)
    table = evaluate_table(
        config, users, KEYS, variation_ids=True, defaults={"premiumBadge": True}
    )
    want = table.add_column(0, "Identifier", users.column("Identifier")).sort_by(
        "Identifier"
    )
    assert collected(out, want.schema).sort_by("Identifier").equals(want)


@pytest.mark.parametrize(
    "name", ["testmatrix_comparators_v6.csv", "testmatrix_prerequisite_flag.csv"]
)
def test_equals_evaluate_table_on_matrices(spark, name: str) -> None:
    raw, users, keys = matrix(name)
    users = users.append_column("row", pa.array(range(users.num_rows), pa.int64()))

    out = batch_spark.evaluate(
        frame_of(spark, users, 3), raw.decode(), keys, keep=["row"]
    )

    table = evaluate_table(flagstaff.Config.from_json(raw), users, keys)
    schema = pa.schema([("row", pa.int64()), *table.schema])
    result = collected(out, schema).sort_by("row").drop_columns(["row"])
    assert result.equals(table)


def test_typed_attributes(spark) -> None:
    raw = b"""{"f": {
        "many": {"t": 2, "r": [{"c": [{"u": {"a": "visits", "c": 14, "d": 50}}],
                                "s": {"v": {"i": 1}}}], "v": {"i": 0}},
        "tagged": {"t": 3, "r": [{"c": [{"u": {"a": "tags", "c": 34, "l": ["b"]}}],
                                  "s": {"v": {"d": 0.5}}}], "v": {"d": 0.0}}
    }}"""
    users = pa.table(
        {
            "Identifier": [f"u{i}" for i in range(40)],
            "visits": pa.array(
                [i * 3 if i % 5 else None for i in range(40)], pa.int64()
            ),
            "tags": [["a", "b"] if i % 2 else ["c"] for i in range(40)],
        }
    )
    df = spark.createDataFrame(
        users.to_pylist(), "Identifier string, visits bigint, tags array<string>"
    )

    out = batch_spark.evaluate(df, raw, keep=["Identifier"])

    assert [f.dataType.simpleString() for f in out.schema.fields] == [
        "string",
        "bigint",
        "double",
    ]
    table = evaluate_table(flagstaff.Config.from_json(raw), users.sort_by("Identifier"))
    schema = pa.schema([("Identifier", pa.string()), *table.schema])
    result = collected(out, schema).sort_by("Identifier").drop_columns(["Identifier"])
    assert result.equals(table)


def test_errors_come_before_any_job(spark) -> None:
    df = frame_of(spark, random_users(10), 1)

    with pytest.raises(BatchError, match="no setting 'nope' in the config"):
        batch_spark.evaluate(df, ONBOARDING_RAW, ["nope"])
    with pytest.raises(BatchError, match="no identifier column 'Identifier'"):
        batch_spark.evaluate(df.drop("Identifier"), ONBOARDING_RAW, KEYS)
    with pytest.raises(TypeError, match="not a compiled Config"):
        batch_spark.evaluate(df, flagstaff.Config.from_json(ONBOARDING_RAW), KEYS)
