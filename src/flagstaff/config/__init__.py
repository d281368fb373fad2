"""
The config layer: config_v6 JSON decoded into typed structures, and flag
overrides merged with it.
"""

from ._model import ConfigModel, SegmentEntry, SettingEntry, decode_config
from ._overrides import FlagOverrides, OverrideBehaviour, merge_models, model_from_values

__all__ = (
    "ConfigModel",
    "FlagOverrides",
    "OverrideBehaviour",
    "SegmentEntry",
    "SettingEntry",
    "decode_config",
    "merge_models",
    "model_from_values",
)
