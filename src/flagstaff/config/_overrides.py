"""
Flag overrides: settings given locally, as a dict or a JSON file, and merged
with the remote config per setting key.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from typing import Optional, Union

from .._errors import ConfigError
from ._model import ConfigModel, Preferences, Setting, SettingEntry, SettingValue, decode_config

__all__ = ("FlagOverrides", "OverrideBehaviour", "merge_models", "model_from_values")

SimpleValue = Union[bool, str, int, float]


class OverrideBehaviour(enum.IntEnum):
    """
    How overrides combine with the remote config.
    """

    #: Only the overrides; nothing is downloaded.
    LOCAL_ONLY = 0
    #: The remote settings, with local ones winning per key.
    LOCAL_OVER_REMOTE = 1
    #: The local settings, with remote ones winning per key.
    REMOTE_OVER_LOCAL = 2


def _value_setting(key: str, value: SimpleValue) -> SettingEntry:
    # bool before int: True is an int to Python, a bool setting to ConfigCat.
    if isinstance(value, bool):
        setting = Setting(t=0, v=SettingValue(b=value))
    elif isinstance(value, str):
        setting = Setting(t=1, v=SettingValue(s=value))
    elif isinstance(value, int):
        setting = Setting(t=2, v=SettingValue(i=value))
    elif isinstance(value, float):
        setting = Setting(t=3, v=SettingValue(d=value))
    else:
        raise ConfigError(
            f"override {key!r} is a {type(value).__name__}; a simple override "
            "is a bool, str, int or float"
        )
    return SettingEntry(key, setting, salt="", segments=())


def model_from_values(values: Mapping[str, SimpleValue]) -> ConfigModel:
    """
    A config whose settings serve the given values to everyone.

    :raises ConfigError: when a value is not a bool, str, int or float.
    """
    settings = {key: _value_setting(key, value) for key, value in values.items()}
    return ConfigModel(preferences=Preferences(), settings=settings)


def merge_models(
    remote: Optional[ConfigModel],
    local: Optional[ConfigModel],
    behaviour: OverrideBehaviour,
) -> Optional[ConfigModel]:
    """
    The config served under `behaviour`; each setting keeps its own salt and
    segments, whichever config it comes from. A missing side (None) leaves
    the other.
    """
    if behaviour is OverrideBehaviour.LOCAL_ONLY or remote is None:
        return local
    if local is None:
        return remote
    if behaviour is OverrideBehaviour.LOCAL_OVER_REMOTE:
        return ConfigModel(remote.preferences, {**remote.settings, **local.settings})
    return ConfigModel(remote.preferences, {**local.settings, **remote.settings})


class FlagOverrides:
    """
    Local settings: a dict of simple values, or a JSON file in either the
    simple ``{"flags": {key: value}}`` form or the full config_v6 form (with
    rules, segments and salts). A file is read again when it changes.

    :param source: a mapping of key to value, or a path to a JSON file.
    :param behaviour: how the overrides combine with the remote config.
    """

    def __init__(
        self,
        source: Union[Mapping[str, SimpleValue], str, os.PathLike],
        behaviour: OverrideBehaviour = OverrideBehaviour.LOCAL_ONLY,
    ) -> None:
        self.behaviour = OverrideBehaviour(behaviour)
        self._path: Optional[str] = None
        self._model: Optional[ConfigModel] = None
        self._mtime: Optional[int] = None
        if isinstance(source, Mapping):
            self._model = model_from_values(source)
        else:
            self._path = os.fspath(source)

    @property
    def is_file(self) -> bool:
        """
        Whether the overrides come from a file (and may change).
        """
        return self._path is not None

    def load(self) -> ConfigModel:
        """
        The overrides as a config; a file is decoded again only when its
        modification time changed. Blocking: call it from a worker thread.

        :raises ConfigError: when the file is not a valid override file.
        :raises OSError: when the file cannot be read.
        """
        if self._path is None:
            assert self._model is not None
            return self._model
        mtime = os.stat(self._path).st_mtime_ns
        if self._model is None or mtime != self._mtime:
            with open(self._path, "rb") as file:
                self._model = self._decode(file.read())
            self._mtime = mtime
        return self._model

    def _decode(self, raw: bytes) -> ConfigModel:
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"override file {self._path} is not JSON: {exc}") from exc
        if isinstance(document, dict) and "flags" in document and "f" not in document:
            flags = document["flags"]
            if not isinstance(flags, dict):
                raise ConfigError(
                    f"override file {self._path}: Expected `object` - at `$.flags`"
                )
            return model_from_values(flags)
        return decode_config(raw)
