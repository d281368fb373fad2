"""
What an Amplitude answer means for the events of its request (the table in
amplitude.md §1.7), decided apart from any I/O so that it can be read and
tested on its own.

The HTTP status is the authority; the body is read only when it is a JSON
object, and only for the fields each status documents.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import msgspec

from ._outcomes import DropReason

__all__ = ("Action", "Verdict", "judge")

_decode = msgspec.json.Decoder().decode

#: the 400 fields that name events by their index in the request
_INDEX_MAPS = (
    "events_with_invalid_fields",
    "events_with_missing_fields",
    "events_with_invalid_id_lengths",
)


class Action(enum.Enum):
    #: all delivered
    DELIVERED = "delivered"
    #: a transient failure: retry the whole request later, with backoff
    RETRY = "retry"
    #: 413 with several events: send them again in smaller requests
    SPLIT = "split"
    #: drop every event with `Verdict.reason`
    DROP = "drop"
    #: the API key is invalid: drop and stop sending
    FATAL = "fatal"
    #: some events dropped or held (`dropped`, `held`), the rest resent now
    SORT = "sort"


@dataclass
class Verdict:
    action: Action
    reason: Optional[DropReason] = None
    #: a line for the log; never contains the API key
    detail: str = ""
    #: index -> why (400) or DAILY_QUOTA (429)
    dropped: dict[int, DropReason] = field(default_factory=dict)
    #: indexes to hold back: their user or device is throttled
    held: set[int] = field(default_factory=set)
    #: ids Amplitude named as throttled: ("u", user_id) or ("d", device_id)
    throttled_ids: set[tuple[str, str]] = field(default_factory=set)
    #: ids over their daily quota
    quota_ids: set[tuple[str, str]] = field(default_factory=set)


def _body_of(content: bytes) -> dict[str, Any]:
    if not content:
        return {}
    try:
        body = _decode(content)
    except (msgspec.DecodeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _indexes(value: Any, count: int) -> list[int]:
    """The valid event indexes in a JSON list; anything else is ignored."""
    if not isinstance(value, list):
        return []
    return [i for i in value if type(i) is int and 0 <= i < count]


def _names(value: Any) -> set[str]:
    """The ids of a JSON ``{id: number}`` map (or a list of ids)."""
    if isinstance(value, dict):
        return {key for key in value if isinstance(key, str)}
    if isinstance(value, list):
        return {key for key in value if isinstance(key, str)}
    return set()


def _error_text(body: dict[str, Any], api_key: str) -> str:
    error = body.get("error")
    if not isinstance(error, str):
        return ""
    # "Invalid API key: <key>" names the key: never let it reach a log line.
    return error.replace(api_key, "<api key>")[:200] if api_key else error[:200]


def judge(
    status: Optional[int],
    content: bytes,
    ids: Sequence[tuple[Optional[str], Optional[str]]],
    api_key: str,
) -> Verdict:
    """
    The verdict on one answer to a request of ``len(ids)`` events.

    :param status: the HTTP status, or None when no answer came (a timeout,
        a reset, a refused connection).
    :param content: the answer's body.
    :param ids: ``(user_id, device_id)`` of each event, in request order.
    :param api_key: the key sent, so that it is kept out of ``detail``.
    """
    if status is None or status == 408 or status >= 500:
        return Verdict(Action.RETRY, detail=f"HTTP {status}" if status else "")
    if 200 <= status < 300:
        return Verdict(Action.DELIVERED)
    body = _body_of(content) if status in (400, 413, 429) else {}
    error = _error_text(body, api_key)
    if status == 413:
        if len(ids) == 1:
            return Verdict(Action.DROP, DropReason.TOO_LARGE, "HTTP 413, one event")
        return Verdict(Action.SPLIT, detail="HTTP 413")
    if status == 429:
        return _throttled(body, ids)
    if status == 400:
        return _bad_request(body, error, ids)
    if status == 403:
        return Verdict(Action.DROP, DropReason.FORBIDDEN, f"HTTP 403 {error}".strip())
    return Verdict(Action.DROP, DropReason.HTTP_ERROR, f"HTTP {status}")


def _throttled(
    body: dict[str, Any], ids: Sequence[tuple[Optional[str], Optional[str]]]
) -> Verdict:
    count = len(ids)
    users = _names(body.get("throttled_users"))
    devices = _names(body.get("throttled_devices"))
    quota_users = _names(body.get("exceeded_daily_quota_users"))
    quota_devices = _names(body.get("exceeded_daily_quota_devices"))
    events = set(_indexes(body.get("throttled_events"), count))
    verdict = Verdict(Action.SORT, detail="HTTP 429")
    if not (users or devices or quota_users or quota_devices or events):
        # A 429 that names nobody: the whole request is throttled.
        verdict.held = set(range(count))
    for index, (user_id, device_id) in enumerate(ids):
        if user_id in quota_users or device_id in quota_devices:
            verdict.dropped[index] = DropReason.DAILY_QUOTA
            if user_id in quota_users:
                verdict.quota_ids.add(("u", user_id))
            if device_id in quota_devices:
                verdict.quota_ids.add(("d", device_id))
            continue
        named = False
        if user_id is not None and user_id in users:
            verdict.throttled_ids.add(("u", user_id))
            named = True
        if device_id is not None and device_id in devices:
            verdict.throttled_ids.add(("d", device_id))
            named = True
        if named or index in events or index in verdict.held:
            verdict.held.add(index)
            if not named:
                # Throttled by index alone: hold whichever ids it has.
                if user_id is not None:
                    verdict.throttled_ids.add(("u", user_id))
                elif device_id is not None:
                    verdict.throttled_ids.add(("d", device_id))
    return verdict


def _bad_request(
    body: dict[str, Any],
    error: str,
    ids: Sequence[tuple[Optional[str], Optional[str]]],
) -> Verdict:
    count = len(ids)
    if error.startswith("Invalid API key"):
        return Verdict(Action.FATAL, DropReason.INVALID_API_KEY, error)
    if isinstance(body.get("missing_field"), str):
        detail = f"{error} ({body['missing_field']})"
        return Verdict(Action.DROP, DropReason.BAD_REQUEST, detail)
    verdict = Verdict(Action.SORT, detail=f"HTTP 400 {error}".strip())
    for name in _INDEX_MAPS:
        fields = body.get(name)
        if not isinstance(fields, dict):
            continue
        for indexes in fields.values():
            for index in _indexes(indexes, count):
                verdict.dropped[index] = DropReason.REJECTED
    for index in _indexes(body.get("silenced_events"), count):
        verdict.dropped[index] = DropReason.REJECTED
    # The silenced-device variant may also name throttled events.
    for index in _indexes(body.get("throttled_events"), count):
        if index not in verdict.dropped:
            verdict.held.add(index)
            user_id, device_id = ids[index]
            if device_id is not None:
                verdict.throttled_ids.add(("d", device_id))
            elif user_id is not None:
                verdict.throttled_ids.add(("u", user_id))
    if not verdict.dropped and not verdict.held:
        # Nothing to single out: the request itself is malformed, and
        # sending it again cannot help.
        return Verdict(Action.DROP, DropReason.BAD_REQUEST, verdict.detail)
    return verdict
