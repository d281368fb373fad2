"""
Explanations in words of one evaluation, from the trace the compiled core
records while it evaluates (see ``Config.explain``).
"""

from __future__ import annotations

from typing import Any, Optional

from ..config._model import COMPARATORS

__all__ = ("explain",)

# Trace events, as evaluate.h numbers them.
SETTING, CONDITION, SEGMENT_CONDITION, BUCKET, SERVED, FAILED = range(1, 7)


OUTCOMES = {0: "false", 1: "true", 2: "cannot evaluate (attribute or user missing, "
                                      "or not of a usable kind)"}


def _value_text(value: Any) -> str:
    if value is None:
        return "(none)"
    for typed in (value.b, value.s, value.i, value.d):
        if typed is not None:
            return repr(typed)
    return "(none)"


def _user_condition(condition: Any) -> str:
    comparator = condition.c
    name = COMPARATORS[comparator] if comparator is not None and 0 <= comparator < 36 \
        else f"comparator {comparator}"
    if condition.l is not None:
        items = list(condition.l)
        shown = items if len(items) <= 10 else [*items[:10], f"... {len(items) - 10} more"]
        value = "hashed values" if "hashed" in name else repr(shown)
    elif condition.d is not None:
        value = repr(condition.d)
    else:
        value = "a hashed value" if "hashed" in name else repr(condition.s)
    return f"User.{condition.a} {name} {value}"


def _condition(condition: Any, segments: tuple) -> str:
    if condition.u is not None:
        return _user_condition(condition.u)
    if condition.s is not None:
        index = condition.s.s
        entry = segments[index] if index is not None and 0 <= index < len(segments) \
            else None
        name = entry.segment.n if entry is not None and entry.segment else f"#{index}"
        verb = "IS IN SEGMENT" if condition.s.c == 0 else "IS NOT IN SEGMENT"
        return f"User {verb} '{name}'"
    if condition.p is not None:
        verb = "EQUALS" if condition.p.c == 0 else "DOES NOT EQUAL"
        return f"Flag '{condition.p.f}' {verb} {_value_text(condition.p.v)}"
    return "a condition of no known kind (passed over)"


def _user_text(user: Any) -> str:
    if user is None or not hasattr(user, "identifier"):
        return "no user"
    parts = [f"'{user.identifier}'"]
    for name in ("email", "country"):
        if getattr(user, name) is not None:
            parts.append(f"{name.capitalize()}={getattr(user, name)!r}")
    parts += [f"{name}={value!r}" for name, value in user.custom.items()]
    return "User " + ", ".join(parts)


def explain(model: Any, keys: tuple, key: str, user: Any, events: list,
            value: Any, failure: Optional[str]) -> str:
    """
    The trace `events` of evaluating `key` for `user`, told in words.
    """
    lines = [f"Evaluating '{key}' for {_user_text(user)}:"]
    stack: list[str] = []
    served: Optional[tuple[int, int]] = None

    for event, a, b, c in events:
        indent = "  " * max(len(stack), 1)
        entry = model.settings[stack[-1]] if stack else None
        if event == SETTING:
            if stack:
                lines.append(f"{indent}(prerequisite flag '{keys[a]}' is evaluated:")
            stack.append(keys[a])
        elif event == CONDITION:
            rule = entry.setting.r[a]
            text = _condition(rule.c[b], entry.segments)
            lead = f"Targeting rule {a + 1}: IF" if b == 0 else "  AND"
            lines.append(f"{indent}{lead} {text} => {OUTCOMES.get(c, c)}")
        elif event == SEGMENT_CONDITION:
            segment = entry.segments[a].segment
            text = _user_condition(segment.r[b])
            lines.append(f"{indent}    in segment '{segment.n}': {text} => "
                         f"{OUTCOMES.get(c, c)}")
        elif event == BUCKET:
            attribute = entry.setting.a or "Identifier"
            where = f"of targeting rule {b + 1}" if b >= 0 else "of the flag"
            lines.append(f"{indent}% options {where}: User.{attribute} with the key "
                         f"'{stack[-1]}' hashes to bucket {a} (of 0..99)")
        elif event == SERVED:
            served = (a, b)
            if len(stack) > 1:
                lines.append(f"{indent}serves by {_by(a, b)})")
            stack.pop()
        elif event == FAILED:
            stack.pop()

    if failure is not None:
        lines.append(f"  Failed: {failure}; the caller's default value is served.")
    else:
        rule, option = served if served is not None else (-1, -1)
        lines.append(f"  Returning {value!r}: {_by(rule, option)}.")
    return "\n".join(lines)


def _by(rule: int, option: int) -> str:
    if rule >= 0 and option >= 0:
        return f"targeting rule {rule + 1}, % option {option + 1}"
    if rule >= 0:
        return f"targeting rule {rule + 1}"
    if option >= 0:
        return f"% option {option + 1} of the flag"
    return "the value for all others"
