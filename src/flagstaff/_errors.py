"""
flagstaff's exceptions and evaluation error codes.

The exception tree::

    FlagError
    └── ConfigError (also a ValueError): config input that is not a usable
        config_v6 document; the message names the JSON path.

Evaluation never raises for a flag problem: it serves the caller's default
and says why with an :class:`ErrorCode` and a message.
"""

from __future__ import annotations

import enum

__all__ = ("ConfigError", "ErrorCode", "FlagError")


class FlagError(Exception):
    """
    The root of every exception flagstaff raises on purpose.
    """


class ConfigError(FlagError, ValueError):
    """
    Config input that cannot be decoded: not JSON, truncated, or of the wrong
    shape. The message names the JSON path and what was expected there.
    """


class ErrorCode(enum.IntEnum):
    """
    Why an evaluation served the default value (the codes ConfigCat's SDKs
    use).
    """

    #: The value was evaluated.
    NONE = 0
    #: The setting is defective: an unknown comparator, a bad segment index,
    #: a value that does not fit the setting type, a prerequisite cycle.
    INVALID_CONFIG_MODEL = 1
    #: The default value's type does not fit the setting type.
    SETTING_TYPE_MISMATCH = 2
    #: No config is available yet.
    CONFIG_JSON_NOT_AVAILABLE = 1000
    #: The config has no setting with this key.
    SETTING_KEY_MISSING = 1001
    #: Something went wrong that is none of the above.
    UNEXPECTED_ERROR = -1
