"""
Readers for ConfigCat's cross-SDK test data in ``<repo>/../shared/data/configcat``.

The data is described by its ``MANIFEST.md``; the readers follow it: matrix CSVs
are split on ``;`` only, ``##null##`` in the Identifier column means "no User",
and typed values are ``{"type": ..., "v": ...}`` objects.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
from pathlib import Path
from typing import Any

import flagstaff

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "configcat"

NULL = "##null##"

#: setting type id -> the Python type of its values
SETTING_TYPES = {0: bool, 1: str, 2: int, 3: float}


def data_dir() -> Path:
    """
    The shared data directory.

    :raises FileNotFoundError: when the data is not checked out beside the repo.
    """
    if not (DATA / "MANIFEST.md").is_file():
        raise FileNotFoundError(
            f"ConfigCat test data missing: expected {DATA} (the shared/ checkout "
            f"beside the repo, <repo>/../shared/data/configcat)"
        )
    return DATA


def path(relative: str) -> Path:
    """
    A file of the shared data, by its path relative to the data directory.
    """
    return data_dir() / relative


def read_json(relative: str) -> Any:
    return json.loads(path(relative).read_text(encoding="utf-8"))


@functools.cache
def config_text(relative: str) -> str:
    return path(relative).read_text(encoding="utf-8")


@functools.cache
def load_config(relative: str) -> flagstaff.Config:
    """
    The config in a data file, decoded once per test session.
    """
    return flagstaff.Config.from_json(config_text(relative))


def setting_types(relative: str) -> dict[str, int]:
    """
    Setting key -> setting type id (``t``) of a config file.
    """
    settings = json.loads(config_text(relative)).get("f", {})
    return {key: setting.get("t") for key, setting in settings.items()}


def go_config(sdk_key: str) -> str:
    """
    The go-sdk snapshot file of an SDK key.
    """
    return "configs_v6/go-sdk-content-by-key/" + sdk_key.replace("/", "__") + ".json"


# -- matrices ---------------------------------------------------------------


def read_matrix(name: str) -> tuple[list[str], list[list[str]]]:
    """
    The header and data rows of a matrix CSV (``;``-separated, no quoting).
    """
    lines = path("matrix/" + name).read_text(encoding="utf-8").split("\n")
    rows = [line.rstrip().split(";") for line in lines if line.strip()]
    return rows[0], rows[1:]


def matrix_user(header: list[str], row: list[str]) -> flagstaff.User | None:
    """
    The User of a matrix row, as ConfigCat's reference runner builds it.
    """
    if row[0] == NULL:
        return None

    def cell(index: int) -> str | None:
        value = row[index]
        return None if value in ("", NULL) else value

    custom = {header[3]: row[3]} if cell(3) is not None else {}
    return flagstaff.User(row[0], email=cell(1), country=cell(2), custom=custom)


def cell_matches(expected: str, actual: Any, setting_type: int) -> bool:
    """
    Type-aware comparison of an expected matrix cell with a served value.
    """
    kind = SETTING_TYPES[setting_type]
    if type(actual) is not kind:
        return False
    if kind is bool:
        return expected.lower() == str(actual).lower()
    if kind is int:
        return int(expected) == actual
    if kind is float:
        return float(expected) == actual
    return expected == actual


# -- typed values -----------------------------------------------------------


def typed(value: dict) -> Any:
    """
    Decodes a ``{"type": ..., "v": ...}`` value of ``typed_cases/``.
    """
    kind, raw = value["type"], value["v"]
    if kind == "float":
        return float(raw)
    if kind == "datetime":
        return datetime.datetime.fromisoformat(raw)
    if kind in ("str", "int", "bool", "list", "null"):
        return raw
    raise ValueError(f"unknown typed value {value!r}")


def typed_user(spec: dict | None) -> flagstaff.User | None:
    """
    The User of a typed case: well-known attributes plus typed custom ones.
    """
    if spec is None:
        return None
    custom = {name: typed(v) for name, v in spec.get("custom", {}).items()}
    return flagstaff.User(
        spec["Identifier"],
        email=spec.get("Email"),
        country=spec.get("Country"),
        custom=custom,
    )


def json_user(spec: dict | None) -> flagstaff.User | None:
    """
    The User of an evaluation-log test: every key but the well-known three is
    a custom attribute.
    """
    if spec is None:
        return None
    well_known = ("Identifier", "Email", "Country")
    custom = {k: v for k, v in spec.items() if k not in well_known}
    return flagstaff.User(
        spec["Identifier"],
        email=spec.get("Email"),
        country=spec.get("Country"),
        custom=custom,
    )


def same_value(expected: Any, actual: Any) -> bool:
    """
    Equal values of the same type (so ``1 != 1.0 != True``); NaN equals NaN.
    """
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(actual)
    return expected == actual
