"""
What changed between two configs, flag by flag, told in short lines fit
for a chart annotation: ``premiumBadge: false → plan EQUALS premium: true;
otherwise false``.

Two versions of a flag differ when they serve something different to some
user: a value, a targeting rule, a percentage option, the segments the flag
uses, or the config's salt when the flag compares hashed values. Variation
ids alone are not compared.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import msgspec

from ._model import (
    COMPARATORS,
    Condition,
    ConfigModel,
    PercentageOption,
    SegmentEntry,
    Setting,
    SettingEntry,
    SettingValue,
    TargetingRule,
    UserCondition,
)

__all__ = ("ConfigChange", "FlagChange", "describe_change")

#: the longest value, segment name or attribute shown in a summary
MAX_VALUE = 40
#: the list items a condition shows before it counts the rest
MAX_ITEMS = 3
#: the longest summary of one flag
MAX_SUMMARY = 200
#: the longest label, well inside what a chart shows on one line
MAX_LABEL = 120
#: the flag keys a label names, and the flags the details list
MAX_LABEL_KEYS = 5
MAX_DETAIL_FLAGS = 50

#: comparators whose comparison values are hashed with the config's salt
_HASHED = frozenset({16, 17, *range(20, 28)})
_ELLIPSIS = "…"


class FlagChange(msgspec.Struct, frozen=True):
    """
    One flag whose served values changed.

    :param key: the setting key.
    :param before: what the flag served, in short (None: it was added).
    :param after: what it serves now (None: it was removed).
    """

    key: str
    before: Optional[str]
    after: Optional[str]

    def __str__(self) -> str:
        before = "(added)" if self.before is None else self.before
        after = "(removed)" if self.after is None else self.after
        return f"{self.key}: {before} → {after}"


class ConfigChange(msgspec.Struct, frozen=True):
    """
    The flags that serve something different in a new config, in the
    order of the new config (then the removed ones); false when there are
    none.

    :param flags: one :class:`FlagChange` per changed flag.
    :param name: what the config is called in the label (an SDK key's
        redacted form, an environment), or None.
    """

    flags: tuple[FlagChange, ...] = ()
    name: Optional[str] = None

    def __bool__(self) -> bool:
        return bool(self.flags)

    def __len__(self) -> int:
        return len(self.flags)

    @property
    def keys(self) -> tuple[str, ...]:
        """
        The keys of the changed flags.
        """
        return tuple(flag.key for flag in self.flags)

    @property
    def label(self) -> str:
        """
        One line naming the change: ``flagstaff: premiumBadge → true`` for
        one flag, ``flagstaff: 3 flags changed (a, b, c)`` for more.
        """
        head = "flagstaff" if self.name is None else f"flagstaff {self.name}"
        flags = self.flags
        if not flags:
            return _cut(f"{head}: no flag changed", MAX_LABEL)
        if len(flags) == 1:
            (flag,) = flags
            if flag.after is None:
                return _cut(f"{head}: {flag.key} removed", MAX_LABEL)
            return _cut(f"{head}: {flag.key} → {flag.after}", MAX_LABEL)
        keys = ", ".join(flag.key for flag in flags[:MAX_LABEL_KEYS])
        if len(flags) > MAX_LABEL_KEYS:
            keys += f", {_ELLIPSIS}"
        return _cut(f"{head}: {len(flags)} flags changed ({keys})", MAX_LABEL)

    @property
    def details(self) -> str:
        """
        One line per changed flag: ``key: before → after``.
        """
        lines = [str(flag) for flag in self.flags[:MAX_DETAIL_FLAGS]]
        hidden = len(self.flags) - MAX_DETAIL_FLAGS
        if hidden > 0:
            lines.append(f"{_ELLIPSIS} and {hidden} more flags")
        return "\n".join(lines)


ConfigLike = Union[ConfigModel, Any]


def describe_change(
    old: Optional[ConfigLike], new: ConfigLike, *, name: Optional[str] = None
) -> ConfigChange:
    """
    The flags that `new` serves differently from `old`.

    :param old: the config replaced, a :class:`ConfigModel` or a
        :class:`~flagstaff.Config`; None when there was none (every flag of
        `new` is then added).
    :param new: the config that replaces it, of either kind.
    :param name: the config's name in the change's label.
    :return: the change, false when nothing served changed.
    :raises TypeError: when `old` or `new` is not a config.
    """
    old_settings = {} if old is None else _model_of(old).settings
    new_settings = _model_of(new).settings
    flags = []
    for key, entry in new_settings.items():
        previous = old_settings.get(key)
        if previous is None:
            flags.append(FlagChange(key, None, summarize(entry)))
        elif _served_form(previous) != _served_form(entry):
            before, after = summarize(previous), summarize(entry)
            if before == after:
                after = _cut(f"{after} ({_unseen_change(previous, entry)})",
                             MAX_SUMMARY)
            flags.append(FlagChange(key, before, after))
    for key, entry in old_settings.items():
        if key not in new_settings:
            flags.append(FlagChange(key, summarize(entry), None))
    return ConfigChange(tuple(flags), name)


def _model_of(config: ConfigLike) -> ConfigModel:
    model = getattr(config, "model", config)
    if not isinstance(model, ConfigModel):
        kind = type(config).__name__
        raise TypeError(f"expected a config or a ConfigModel, not {kind}")
    return model


# -- comparing --------------------------------------------------------------


def _served_form(entry: SettingEntry) -> tuple:
    """
    Everything that decides what `entry` serves, variation ids left out.
    """
    setting = entry.setting
    if setting is None:
        return (entry.error,)
    rules = tuple(_rule_form(rule) for rule in setting.r)
    used = _segments_used(setting, entry.segments)
    salted = any(_is_hashed(condition) for condition in _user_conditions(setting, used))
    return (
        setting.t,
        setting.a,
        rules,
        _options_form(setting.p),
        setting.v,
        tuple((used_entry.segment, used_entry.error) for used_entry in used),
        entry.salt if salted else None,
    )


def _unseen_change(previous: SettingEntry, entry: SettingEntry) -> str:
    """
    Why two versions of a flag differ when their summaries read the same.
    """
    if previous.setting is not None and entry.setting is not None:
        before = _segments_used(previous.setting, previous.segments)
        after = _segments_used(entry.setting, entry.segments)
        changed = [
            _segment_name(new)
            for old, new in zip(before, after)
            if (old.segment, old.error) != (new.segment, new.error)
        ]
        if changed:
            names = ", ".join(dict.fromkeys(changed))
            return f"segment {names} changed"
        if previous.salt != entry.salt:
            return "salt changed"
    return "changed beyond this summary"


def _segment_name(entry: SegmentEntry) -> str:
    segment = entry.segment
    return _cut(segment.n, MAX_VALUE) if segment is not None else "(invalid)"


def _rule_form(rule: TargetingRule) -> tuple:
    served = rule.s.v if rule.s is not None else None
    options = _options_form(rule.p) if rule.p is not None else None
    return (rule.c, served, options)


def _options_form(options: tuple[PercentageOption, ...]) -> tuple:
    return tuple((option.p, option.v) for option in options)


def _segments_used(setting: Setting, segments: tuple[SegmentEntry, ...]) -> tuple:
    """
    The segments the flag's rules refer to, in the order they do; an index
    out of range stands for a missing segment.
    """
    used = []
    for rule in setting.r:
        for condition in rule.c:
            if condition.s is None:
                continue
            index = condition.s.s
            if index is not None and 0 <= index < len(segments):
                used.append(segments[index])
            else:
                used.append(SegmentEntry(None, f"no segment #{index}"))
    return tuple(used)


def _user_conditions(setting: Setting, used: tuple[SegmentEntry, ...]):
    for rule in setting.r:
        for condition in rule.c:
            if condition.u is not None:
                yield condition.u
    for entry in used:
        if entry.segment is not None:
            yield from entry.segment.r


def _is_hashed(condition: UserCondition) -> bool:
    return condition.c in _HASHED


# -- telling ------------------------------------------------------------------


def summarize(entry: SettingEntry) -> str:
    """
    What a flag serves, in one short line: its targeting rules in order
    (``conditions: served``), then ``otherwise`` what everyone else gets.
    """
    setting = entry.setting
    if setting is None:
        return _cut(f"(invalid: {entry.error})", MAX_SUMMARY)
    parts = [
        f"{_conditions_text(rule.c, entry.segments)}: {_rule_served(rule, setting)}"
        for rule in setting.r
    ]
    fallback = _split_text(setting.p, setting.a) if setting.p else _value(setting.v)
    parts.append(f"otherwise {fallback}" if parts else fallback)
    return _cut("; ".join(parts), MAX_SUMMARY)


def _rule_served(rule: TargetingRule, setting: Setting) -> str:
    if rule.p is not None:
        return _split_text(rule.p, setting.a)
    return _value(rule.s.v if rule.s is not None else None)


def _split_text(options: tuple[PercentageOption, ...], attribute: Optional[str]) -> str:
    split = " / ".join(f"{_value(option.v)} {option.p}%" for option in options)
    if attribute is None or attribute == "Identifier":
        return split
    return f"by {_cut(attribute, MAX_VALUE)} {split}"


def _conditions_text(
    conditions: tuple[Condition, ...], segments: tuple[SegmentEntry, ...]
) -> str:
    if not conditions:
        return "everyone"
    texts = (_condition_text(condition, segments) for condition in conditions)
    return " AND ".join(texts)


def _condition_text(condition: Condition, segments: tuple[SegmentEntry, ...]) -> str:
    if condition.u is not None:
        return _user_condition_text(condition.u)
    if condition.s is not None:
        index = condition.s.s
        name = f"segment #{index}"
        if index is not None and 0 <= index < len(segments):
            segment = segments[index].segment
            if segment is not None:
                name = segment.n
        name = _cut(name, MAX_VALUE)
        return name if condition.s.c == 0 else f"not in {name}"
    if condition.p is not None:
        verb = "is" if condition.p.c == 0 else "is not"
        flag = _cut(condition.p.f or "?", MAX_VALUE)
        return f"flag {flag} {verb} {_value(condition.p.v)}"
    return "(unknown condition)"


def _user_condition_text(condition: UserCondition) -> str:
    comparator = condition.c
    known = comparator is not None and 0 <= comparator < len(COMPARATORS)
    verb = COMPARATORS[comparator] if known else f"comparator {comparator}"
    attribute = _cut(condition.a or "?", MAX_VALUE)
    if condition.l is not None:
        items = condition.l
        if comparator in _HASHED:
            values = f"{len(items)} value" + ("" if len(items) == 1 else "s")
        else:
            shown = ", ".join(_cut(item, MAX_VALUE) for item in items[:MAX_ITEMS])
            hidden = len(items) - MAX_ITEMS
            values = shown + (f", {_ELLIPSIS} (+{hidden})" if hidden > 0 else "")
    elif condition.d is not None:
        values = _number(condition.d)
    elif comparator in _HASHED:
        values = "a value"
    else:
        values = _cut(condition.s or "", MAX_VALUE)
    return f"{attribute} {verb} {values}"


def _value(value: Optional[SettingValue]) -> str:
    if value is None:
        return "(no value)"
    if value.b is not None:
        return "true" if value.b else "false"
    if value.s is not None:
        return _cut(value.s, MAX_VALUE) if value.s else '""'
    if value.i is not None:
        return _number(value.i)
    if value.d is not None:
        return _number(value.d)
    return "(no value)"


def _number(number: Union[int, float]) -> str:
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return str(number)


def _cut(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters, an ellipsis if cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS
