"""
The Dask adapter on a real ``distributed.LocalCluster``: two worker processes
on 127.0.0.1, random ports. The result equals ``evaluate_table`` on the same
users; the config's bytes reach each worker once and are compiled there once.
"""

from __future__ import annotations

from collections.abc import Iterator

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pytest
from batch_users import ONBOARDING_RAW, matrix, random_users
from distributed import Client, LocalCluster

import flagstaff
from flagstaff.batch import BatchError, evaluate_table
from flagstaff.batch import dask as batch_dask
from flagstaff.batch._shared import digest

KEYS = ["onboardingFeature", "premiumBadge"]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        with Client(cluster) as client:
            yield client


def unique_config(tag: str) -> bytes:
    """The onboarding config under bytes of its own (white space), so that
    a test counts only its own compilations."""
    return ONBOARDING_RAW + b" " * (1 + sum(map(ord, tag)) % 997)


def as_arrow(frame: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # pandas' strings come back as large_string.
    return table if schema is None else table.cast(schema)


def test_equals_evaluate_table(client: Client) -> None:
    users = random_users(5000).to_pandas()
    frame = dd.from_pandas(users, npartitions=8)

    result = batch_dask.evaluate(
        frame, ONBOARDING_RAW, KEYS, variation_ids=True, defaults={"premiumBadge": True}
    ).compute()

    config = flagstaff.Config.from_json(ONBOARDING_RAW)
    table = evaluate_table(
        config,
        as_arrow(users),
        KEYS,
        variation_ids=True,
        defaults={"premiumBadge": True},
    )
    assert list(result.index) == list(users.index)
    assert as_arrow(result, table.schema).equals(table)
    assert str(result.dtypes["premiumBadge"]) == "boolean"


@pytest.mark.parametrize(
    "name",
    [
        "testmatrix_comparators_v6.csv",
        "testmatrix_prerequisite_flag.csv",
        "testmatrix_segments.csv",
    ],
)
def test_equals_evaluate_table_on_matrices(client: Client, name: str) -> None:
    raw, users, keys = matrix(name)
    frame = dd.from_pandas(users.to_pandas(), npartitions=3)

    result = batch_dask.evaluate(frame, raw.decode(), keys).compute()

    table = evaluate_table(flagstaff.Config.from_json(raw), users, keys)
    assert as_arrow(result, table.schema).equals(table)


def test_typed_attributes_and_the_meta(client: Client) -> None:
    raw = b"""{"f": {
        "many": {"t": 2, "r": [{"c": [{"u": {"a": "visits", "c": 14, "d": 50}}],
                                "s": {"v": {"i": 1}}}], "v": {"i": 0}},
        "tagged": {"t": 3, "r": [{"c": [{"u": {"a": "tags", "c": 34, "l": ["b"]}}],
                                  "s": {"v": {"d": 0.5}}}], "v": {"d": 0.0}},
        "late": {"t": 0, "r": [{"c": [{"u": {"a": "seen", "c": 19, "d": 1700000000}}],
                                "s": {"v": {"b": true}}}], "v": {"b": false}}
    }}"""
    users = pd.DataFrame(
        {
            "Identifier": [f"u{i}" for i in range(40)],
            "visits": pd.array([i * 3 if i % 5 else None for i in range(40)], "Int64"),
            # As an Arrow list: Dask turns object columns into text.
            "tags": pd.array(
                [["a", "b"] if i % 2 else ["c"] for i in range(40)],
                pd.ArrowDtype(pa.list_(pa.string())),
            ),
            "seen": pd.to_datetime(
                [1_600_000_000 + i * 5_000_000 for i in range(40)], unit="s", utc=True
            ),
        },
        index=pd.Index([f"row{i}" for i in range(40)], name="row"),
    )
    frame = dd.from_pandas(users, npartitions=4, sort=False)

    lazy = batch_dask.evaluate(frame, raw, keep=["visits"])
    result = lazy.compute()

    assert dict(lazy.dtypes) == dict(result.dtypes)
    assert [str(kind) for kind in result.dtypes] == [
        "Int64",
        "Int64",
        "Float64",
        "boolean",
    ]
    assert list(result.index) == list(users.index)
    table = evaluate_table(flagstaff.Config.from_json(raw), as_arrow(users))
    assert as_arrow(result.drop(columns="visits"), table.schema).equals(table)
    assert set(result["many"]) == {0, 1}
    assert set(result["tagged"]) == {0.0, 0.5}
    assert set(result["late"]) == {False, True}


def test_config_reaches_each_worker_once_and_is_compiled_once(client: Client) -> None:
    raw = unique_config("once")
    name = digest(raw)
    frame = dd.from_pandas(random_users(4000).to_pandas(), npartitions=16)

    batch_dask.evaluate(frame, raw, KEYS).compute()

    def compiled_here(name: str = name) -> int:
        from flagstaff.batch import _shared

        return _shared.compilations[name]

    def fetched_here(dask_worker, name: str = name[:16]) -> int:
        return sum(
            any(f"flagstaff-config-{name}" in str(key) for key in entry["keys"])
            for entry in dask_worker.transfer_incoming_log
        )

    compiled = client.run(compiled_here)
    fetched = client.run(fetched_here)
    assert len(compiled) == 2
    # Both workers evaluated partitions, and each compiled the config once.
    assert sorted(compiled.values()) == [1, 1]
    # One worker holds the config's task; the other fetched it once.
    assert sorted(fetched.values()) == [0, 1]
    # Nothing is compiled in the client's process beyond checking the config.
    from flagstaff.batch import _shared

    assert _shared.compilations[name] == 0


def test_a_second_run_compiles_nothing_new(client: Client) -> None:
    raw = unique_config("again")
    frame = dd.from_pandas(random_users(1000).to_pandas(), npartitions=4)

    batch_dask.evaluate(frame, raw, KEYS).compute()
    batch_dask.evaluate(frame, raw, ["premiumBadge"]).compute()

    from flagstaff.batch import _shared

    name = digest(raw)
    counts = client.run(lambda: _shared.compilations[name])
    assert set(counts.values()) <= {0, 1}
    assert sum(counts.values()) >= 1


def test_only_the_columns_read_are_converted(client: Client) -> None:
    users = random_users(100).to_pandas()
    users["extra"] = [{"a": 1}] * 100  # no user attribute, and never read
    frame = dd.from_pandas(users, npartitions=2)

    result = batch_dask.evaluate(
        frame, ONBOARDING_RAW, KEYS, keep=["Identifier"]
    ).compute()

    assert list(result.columns) == ["Identifier", *KEYS]
    assert list(result["Identifier"]) == list(users["Identifier"])


def test_errors_come_before_any_computation(client: Client) -> None:
    frame = dd.from_pandas(random_users(10).to_pandas(), npartitions=1)
    config = flagstaff.Config.from_json(ONBOARDING_RAW)

    with pytest.raises(BatchError, match="no setting 'nope' in the config"):
        batch_dask.evaluate(frame, ONBOARDING_RAW, ["nope"])
    with pytest.raises(TypeError, match="not a compiled Config"):
        batch_dask.evaluate(frame, config, KEYS)  # type: ignore[arg-type]
    with pytest.raises(BatchError, match="no identifier column 'Identifier'"):
        batch_dask.evaluate(frame.drop(columns="Identifier"), ONBOARDING_RAW, KEYS)
    with pytest.raises(BatchError, match="no column 'Email' in the frame"):
        batch_dask.evaluate(frame, ONBOARDING_RAW, KEYS, keep=["Email"])
    with pytest.raises(flagstaff.ConfigError):
        batch_dask.evaluate(frame, b"{", KEYS)
