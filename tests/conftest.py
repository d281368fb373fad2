from pathlib import Path

import pytest

from configcat_data import data_dir


@pytest.fixture(scope="session")
def configcat_data() -> Path:
    """
    ConfigCat's shared test data; a missing checkout fails, never skips.
    """
    return data_dir()
