"""
The config layer: config_v6 JSON decoded into typed structures, flag
overrides merged with it, and what changed between two configs.
"""

from ._changes import ConfigChange, FlagChange, describe_change
from ._model import ConfigModel, SegmentEntry, SettingEntry, decode_config
from ._overrides import FlagOverrides, OverrideBehaviour, merge_models, model_from_values

__all__ = (
    "ConfigChange",
    "ConfigModel",
    "FlagChange",
    "FlagOverrides",
    "OverrideBehaviour",
    "SegmentEntry",
    "SettingEntry",
    "decode_config",
    "describe_change",
    "merge_models",
    "model_from_values",
)
