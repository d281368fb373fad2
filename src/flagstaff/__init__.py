"""
flagstaff: feature flags and experiments on ConfigCat configs, evaluated by a
compiled core.
"""

from ._errors import ConfigError, ErrorCode, FlagError
from .core import Config, EvaluationDetails, User

__version__ = "0.1.0"

__all__ = (
    "Config",
    "ConfigError",
    "ErrorCode",
    "EvaluationDetails",
    "FlagError",
    "User",
)
