"""
Users and configs shared by the tests of ``flagstaff evaluate`` and of the
Dask and Spark adapters, and the expected values from ``Config.get_value``.
"""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa

import flagstaff
from configcat_data import NULL, REPO, config_text, read_json, read_matrix

ONBOARDING_FILE = REPO / "src" / "flagstaff" / "examples" / "onboarding.json"
ONBOARDING_RAW = ONBOARDING_FILE.read_bytes()

#: the well-known attributes, as ``User`` takes them
_KNOWN = {"Identifier", "Email", "Country"}

MATRICES = (
    "testmatrix.csv",
    "testmatrix_and_or.csv",
    "testmatrix_comparators_v6.csv",
    "testmatrix_number.csv",
    "testmatrix_prerequisite_flag.csv",
    "testmatrix_segments.csv",
    "testmatrix_semantic.csv",
    "testmatrix_unicode.csv",
)


def random_users(rows: int, seed: int = 1) -> pa.Table:
    """
    Users of the onboarding example: free and premium ones, some without a
    plan or a country, and a column that no setting reads.
    """
    rng = random.Random(seed)
    plans = ["free", "premium", None]
    countries = ["NA", "HU", "US", None]
    return pa.table(
        {
            "Identifier": pa.array(
                [f"user-{rng.randrange(10**9)}" for _ in range(rows)], pa.string()
            ),
            "plan": pa.array([rng.choice(plans) for _ in range(rows)], pa.string()),
            "Country": pa.array(
                [rng.choice(countries) for _ in range(rows)], pa.string()
            ),
            "visits": pa.array([rng.randrange(100) for _ in range(rows)], pa.int64()),
        }
    )


def user_of(row: dict[str, Any]) -> flagstaff.User:
    """
    The User of one row: a null is a missing attribute.
    """
    custom = {
        name: value
        for name, value in row.items()
        if name not in _KNOWN and value is not None
    }
    return flagstaff.User(
        row.get("Identifier"),
        email=row.get("Email"),
        country=row.get("Country"),
        custom=custom,
    )


def expected(
    config: flagstaff.Config,
    users: pa.Table,
    keys: list[str],
    variation_ids: bool = False,
) -> dict[str, list]:
    """
    Column by column, what ``config.get_value`` serves each row's user.
    """
    columns: dict[str, list] = {}
    for key in keys:
        columns[key] = []
        if variation_ids:
            columns[f"{key}:variation_id"] = []
    for row in users.to_pylist():
        user = user_of(row)
        for key in keys:
            details = config.get_value_details(key, None, user)
            columns[key].append(details.value)
            if variation_ids:
                columns[f"{key}:variation_id"].append(details.variation_id)
    return columns


def matrix(name: str) -> tuple[bytes, pa.Table, list[str]]:
    """
    A matrix of ConfigCat's test data: its config's bytes, its users as
    text (an empty cell is null; rows without a User are left out), and
    its setting keys.
    """
    entry = read_json("configs_v6/index.json")[name]
    header, rows = read_matrix(name)
    rows = [row for row in rows if row[0] != NULL]
    attributes = header[:4]
    users = pa.table(
        {
            attribute: [row[index] or None for row in rows]
            for index, attribute in enumerate(attributes)
        }
    )
    return config_text(entry["config"]).encode(), users, header[4:]
