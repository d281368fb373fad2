"""
Decoding of ConfigCat's config_v6 JSON into typed structures.

The structures use ConfigCat's short keys (``t``, ``r``, ``p``, ...); field
comments give their meaning. Decoding is strict about the document's outer
shape, which raises :class:`~flagstaff.ConfigError`, and forgiving inside a
setting or a segment: one that does not decode is kept with its error, so
that it serves the caller's default while every other setting works, as in
ConfigCat's SDKs.
"""

from __future__ import annotations

from typing import Union

import msgspec

from .._errors import ConfigError

__all__ = (
    "COMPARATORS",
    "Condition",
    "ConfigModel",
    "PercentageOption",
    "Preferences",
    "PrerequisiteFlagCondition",
    "Segment",
    "SegmentCondition",
    "ServedValue",
    "Setting",
    "SettingEntry",
    "SettingValue",
    "TargetingRule",
    "UserCondition",
    "decode_config",
)


#: the names of the comparators of user conditions, by id (0..35)
COMPARATORS = (
    "IS ONE OF", "IS NOT ONE OF", "CONTAINS ANY OF", "NOT CONTAINS ANY OF",
    "IS ONE OF (semver)", "IS NOT ONE OF (semver)", "< (semver)", "<= (semver)",
    "> (semver)", ">= (semver)", "= (number)", "!= (number)", "< (number)",
    "<= (number)", "> (number)", ">= (number)", "IS ONE OF (hashed)",
    "IS NOT ONE OF (hashed)", "BEFORE", "AFTER", "EQUALS (hashed)",
    "NOT EQUALS (hashed)", "STARTS WITH ANY OF (hashed)",
    "NOT STARTS WITH ANY OF (hashed)", "ENDS WITH ANY OF (hashed)",
    "NOT ENDS WITH ANY OF (hashed)", "ARRAY CONTAINS ANY OF (hashed)",
    "ARRAY NOT CONTAINS ANY OF (hashed)", "EQUALS", "NOT EQUALS",
    "STARTS WITH ANY OF", "NOT STARTS WITH ANY OF", "ENDS WITH ANY OF",
    "NOT ENDS WITH ANY OF", "ARRAY CONTAINS ANY OF", "ARRAY NOT CONTAINS ANY OF",
)


class SettingValue(msgspec.Struct, frozen=True, gc=False):
    """
    A setting value: exactly one key is meaningful, chosen by setting type.
    """

    b: Union[bool, None] = None             # bool setting
    s: Union[str, None] = None              # string setting
    i: Union[int, float, None] = None       # whole-number setting
    d: Union[float, None] = None            # decimal setting


class UserCondition(msgspec.Struct, frozen=True, gc=False):
    a: Union[str, None] = None              # attribute name
    c: Union[int, None] = None              # comparator id, 0..35
    s: Union[str, None] = None              # a single comparison value
    d: Union[float, None] = None            # a number comparison value
    l: Union[tuple[str, ...], None] = None  # noqa: E741 - a list of values


class SegmentCondition(msgspec.Struct, frozen=True, gc=False):
    s: Union[int, None] = None              # index into the segment list
    c: Union[int, None] = None              # 0 IS IN, 1 IS NOT IN


class PrerequisiteFlagCondition(msgspec.Struct, frozen=True, gc=False):
    f: Union[str, None] = None              # the prerequisite's key
    c: Union[int, None] = None              # 0 EQUALS, 1 NOT EQUALS
    v: Union[SettingValue, None] = None     # the value compared with


class Condition(msgspec.Struct, frozen=True, gc=False):
    u: Union[UserCondition, None] = None
    s: Union[SegmentCondition, None] = None
    p: Union[PrerequisiteFlagCondition, None] = None


class ServedValue(msgspec.Struct, frozen=True, gc=False):
    v: Union[SettingValue, None] = None
    i: Union[str, None] = None              # variation id


class PercentageOption(msgspec.Struct, frozen=True, gc=False):
    p: int = 0                              # percentage
    v: Union[SettingValue, None] = None
    i: Union[str, None] = None


class TargetingRule(msgspec.Struct, frozen=True, gc=False):
    c: tuple[Condition, ...] = ()           # ANDed conditions
    s: Union[ServedValue, None] = None      # the value served on a match...
    p: Union[tuple[PercentageOption, ...], None] = None   # ...or a split


class Setting(msgspec.Struct, frozen=True, gc=False):
    t: Union[int, None] = None              # 0 bool, 1 string, 2 int, 3 double
    a: Union[str, None] = None              # attribute hashed for options
    r: tuple[TargetingRule, ...] = ()
    p: tuple[PercentageOption, ...] = ()
    v: Union[SettingValue, None] = None     # served to all others
    i: Union[str, None] = None


class Segment(msgspec.Struct, frozen=True, gc=False):
    n: str = ""                             # name: the segment's hash salt
    r: tuple[UserCondition, ...] = ()       # ANDed conditions


class Preferences(msgspec.Struct, frozen=True, gc=False):
    u: Union[str, None] = None              # base URL to use
    r: Union[int, None] = None              # redirect mode: 0, 1 or 2
    s: Union[str, None] = None              # config salt


class _Document(msgspec.Struct, frozen=True, gc=False):
    p: Union[Preferences, None] = None
    s: tuple[msgspec.Raw, ...] = ()
    f: dict[str, msgspec.Raw] = {}


class _TypedDocument(msgspec.Struct, frozen=True, gc=False):
    p: Union[Preferences, None] = None
    s: tuple[Segment, ...] = ()
    f: dict[str, Setting] = {}


class SegmentEntry(msgspec.Struct, frozen=True, gc=False):
    """
    A segment of a config, or why it could not be decoded.
    """

    segment: Union[Segment, None]
    error: Union[str, None] = None


class SettingEntry(msgspec.Struct, frozen=True, gc=False):
    """
    A setting with the context of the config it came from: its salt and its
    segments. Flag overrides merge entries of several configs, and each
    keeps its own context.
    """

    key: str
    setting: Union[Setting, None]
    salt: str
    segments: tuple[SegmentEntry, ...]
    error: Union[str, None] = None


class ConfigModel(msgspec.Struct, frozen=True, gc=False):
    """
    A decoded config: its preferences and its settings in document order.
    """

    preferences: Preferences
    settings: dict[str, SettingEntry]


_TYPED_DOCUMENT = msgspec.json.Decoder(_TypedDocument)
_DOCUMENT = msgspec.json.Decoder(_Document)
_SETTING = msgspec.json.Decoder(Setting)
_SEGMENT = msgspec.json.Decoder(Segment)


def _located(error: Exception, prefix: str) -> str:
    """
    msgspec's message with its JSON path placed under `prefix`.
    """
    text = str(error)
    if "`$" in text:
        return text.replace("`$", "`" + prefix, 1)
    return f"{text} - at `{prefix}`"


def decode_config(raw: Union[bytes, str]) -> ConfigModel:
    """
    Decodes a config_v6 document.

    :param raw: the JSON text, as downloaded.
    :return: the decoded config; defective settings carry their error.
    :raises ConfigError: when `raw` is not JSON or not a config_v6 document.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview, str)):
        raise ConfigError(
            f"a config is JSON text (bytes or str), not {type(raw).__name__}"
        )
    try:
        # Most documents are valid through and through: decode them in one
        # pass. Only one that is not is taken apart setting by setting.
        return _model_of(_TYPED_DOCUMENT.decode(raw))
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_a_document(exc) from exc
    try:
        document = _DOCUMENT.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_a_document(exc) from exc

    segments = tuple(
        SegmentEntry(*_decode_part(_SEGMENT, raw_segment, f"$.s[{index}]"))
        for index, raw_segment in enumerate(document.s)
    )
    preferences = document.p or Preferences()
    salt = preferences.s or ""
    settings = {}
    for key, raw_setting in document.f.items():
        setting, error = _decode_part(_SETTING, raw_setting, f"$.f[{key!r}]")
        settings[key] = SettingEntry(key, setting, salt, segments, error)
    return ConfigModel(preferences=preferences, settings=settings)


def _not_a_document(exc: Exception) -> ConfigError:
    if isinstance(exc, RecursionError):
        return ConfigError("not a config_v6 document: JSON nested too deeply - at `$`")
    return ConfigError(f"not a config_v6 document: {_located(exc, '$')}")


def _model_of(document: _TypedDocument) -> ConfigModel:
    segments = tuple(SegmentEntry(segment) for segment in document.s)
    preferences = document.p or Preferences()
    salt = preferences.s or ""
    settings = {
        key: SettingEntry(key, setting, salt, segments)
        for key, setting in document.f.items()
    }
    return ConfigModel(preferences=preferences, settings=settings)


def _decode_part(decoder: msgspec.json.Decoder, raw: msgspec.Raw, path: str):
    """
    One setting or segment, or None and why it is not one.
    """
    try:
        return decoder.decode(raw), None
    except msgspec.DecodeError as exc:
        return None, f"invalid config JSON: {_located(exc, path)}"
    except RecursionError:
        return None, f"invalid config JSON: nested too deeply at `{path}`"
