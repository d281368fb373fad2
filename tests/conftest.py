"""
Fixtures for every test: ConfigCat's shared data, and the fake of Amplitude's
chart annotation API (which the amplitude, client and relay tests all post to).
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from configcat_data import data_dir

sys.path.insert(0, str(Path(__file__).resolve().parent / "amplitude"))

import fake_annotations  # noqa: E402


@pytest.fixture(scope="session")
def configcat_data() -> Path:
    """
    ConfigCat's shared test data; a missing checkout fails, never skips.
    """
    return data_dir()


@pytest.fixture(scope="session")
def _annotation_api() -> Iterator[fake_annotations.Server]:
    with fake_annotations.serve(fake_annotations.FakeAnnotations()) as running:
        yield running


@pytest.fixture
def annotation_api(
    _annotation_api: fake_annotations.Server,
) -> Iterator[fake_annotations.Server]:
    """
    The fake chart annotation API, emptied for this test.
    """
    with fake_annotations.fresh(_annotation_api) as server:
        yield server
