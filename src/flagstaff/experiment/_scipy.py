"""The one place that imports scipy, so that ``import flagstaff`` never needs it."""

from __future__ import annotations

from typing import Any


def stats() -> Any:
    """
    Returns :mod:`scipy.stats`, imported on first use.

    :return: the ``scipy.stats`` module.
    :raises ImportError: when scipy is not installed, naming the extra to install.
    """
    try:
        from scipy import stats as _stats
    except ImportError as exc:
        raise ImportError(
            "flagstaff.experiment needs scipy: pip install 'flagstaff[experiment]'"
        ) from exc
    return _stats
