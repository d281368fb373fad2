"""
flagstaff: feature flags and experiments on ConfigCat configs, evaluated by a
compiled core.
"""

from ._errors import ConfigError, ErrorCode, FlagError
from ._version import __version__
from .amplitude import AmplitudeEmitter, ChartAnnotator
from .client import (
    AutoPoll,
    Client,
    ClientClosedError,
    DataGovernance,
    FileCache,
    LazyLoad,
    LongPoll,
    ManualPoll,
    MemoryCache,
    RefreshResult,
    Snapshot,
)
from .config import ConfigChange, FlagOverrides, OverrideBehaviour
from .core import Config, EvaluationDetails, User


__all__ = (
    "AmplitudeEmitter",
    "AutoPoll",
    "ChartAnnotator",
    "Client",
    "ClientClosedError",
    "Config",
    "ConfigChange",
    "ConfigError",
    "DataGovernance",
    "ErrorCode",
    "EvaluationDetails",
    "FileCache",
    "FlagError",
    "FlagOverrides",
    "LazyLoad",
    "LongPoll",
    "ManualPoll",
    "MemoryCache",
    "OverrideBehaviour",
    "RefreshResult",
    "Snapshot",
    "User",
)
