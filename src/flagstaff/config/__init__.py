"""
The config layer: config_v6 JSON decoded into typed structures.
"""

from ._model import (
    ConfigModel,
    SegmentEntry,
    SettingEntry,
    decode_config,
)

__all__ = ("ConfigModel", "SegmentEntry", "SettingEntry", "decode_config")
