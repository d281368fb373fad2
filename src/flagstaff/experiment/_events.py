"""
The readout of an experiment from its Amplitude events: the exposures,
identifies and conversions as flagstaff's emitter sends them, the same events
as Amplitude's Export API returns them after ingestion, an export file, or a
:class:`~flagstaff.testing.MemorySink`.

The events are read once, in any order, and reduced as they go to a few
values per user, so an export of any length takes memory in proportion to
its users, not its events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Optional, Union

import msgspec

from ._readout import DEFAULT_CONVERSION_EVENT, Readout, readout

__all__ = ("readout_from_events",)

#: an exposure as the emitter sends it, and as Amplitude stores it (§3.4)
_EXPOSURE_TYPES = frozenset({"$exposure", "[Experiment] Exposure"})
_FLAG_KEY = ("[Experiment] Flag Key", "flag_key")
_VARIANT = ("[Experiment] Variant", "variant")
_EXPERIMENT_KEY = ("[Experiment] Experiment Key", "experiment_key")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)

#: a property that an ``$unset`` removed
_UNSET = object()

Time = Union[datetime, int, float]
Where = Union[Mapping[str, Any], Callable[[Mapping[str, Any]], bool]]


class _Line(msgspec.Struct):
    """
    The fields of an exported event that the readout reads; msgspec skips
    the others without building them.
    """

    event_type: Any = None
    user_id: Any = None
    device_id: Any = None
    time: Any = None
    event_time: Any = None
    event_properties: Any = None
    user_properties: Any = None


class _LineWithoutProperties(msgspec.Struct):
    """
    :class:`_Line` without the user properties, when no ``where`` needs them:
    a class attribute, not a field, so the decoder skips them.
    """

    event_type: Any = None
    user_id: Any = None
    device_id: Any = None
    time: Any = None
    event_time: Any = None
    event_properties: Any = None
    user_properties = None


class _EventError(Exception):
    """
    An event the readout cannot read; the caller adds where it was.
    """


def readout_from_events(
    events: Union[Iterable[Mapping[str, Any]], str, os.PathLike[str], Any],
    flag_key: str,
    *,
    conversion_event: str = DEFAULT_CONVERSION_EVENT,
    where: Optional[Where] = None,
    start: Optional[Time] = None,
    end: Optional[Time] = None,
    experiment_key: Optional[str] = None,
    **options: Any,
) -> Readout:
    """
    Reads an experiment on one flag from its Amplitude events.

    ``events`` is any of:

    - an iterable of event dicts as the HTTP V2 API receives them from
      flagstaff's emitter: ``$exposure`` (or ``[Experiment] Exposure``) with
      the event properties ``flag_key``, ``variant`` and ``experiment_key``,
      ``$identify`` with ``user_properties`` ``{"$set": {...}}``, and the
      conversions as events of their own type; ``time`` in ms since the epoch;
    - the same as Amplitude's Export API returns them after ingestion:
      ``[Experiment] Exposure`` with ``[Experiment] Flag Key`` and
      ``[Experiment] Variant``, each event with a ``user_properties``
      snapshot, and ``event_time`` text (UTC) where ``time`` is missing;
    - the path of an export file: JSON lines (``.json``, ``.jsonl``),
      optionally gzipped (``.json.gz``, ``.jsonl.gz``), or a ``.zip`` of
      such files as the Export API returns;
    - a :class:`~flagstaff.testing.MemorySink`, or anything with its
      ``exposures``, ``tracked`` and ``identifies``.

    A user is the event's ``user_id``, or its ``device_id`` without one. A
    user counts as exposed to the variant of their earliest exposure in the
    window; repeated exposures count once, and users exposed to more than one
    variant count in the first and are counted in the notes, as
    :func:`readout` does. An exposure without a variant (which unsets the
    experiment's user property in Amplitude) is not an exposure. A user
    converts when a conversion event of theirs falls in the window at or
    after their first exposure: **a conversion before the first exposure does
    not count**, since the variant cannot have caused it (the notes say how
    many users converted only before).

    ``where`` keeps the users whose properties matched when they were first
    exposed: for each name, the value set last at or before their first
    exposure (from the ``$set``, ``$setOnce`` and ``$unset`` of their events,
    or from the ``user_properties`` snapshots of exported events), or, when
    nothing was set by then, the first value set after it and before the end
    of the window (an identify sent just after the exposure) equals the value
    given. A later change, such as ``plan`` becoming ``premium`` with
    ``"Subscribed to Premium"``, does not move a user out of the segment they
    were exposed in: filtering on it would drop exactly the users who converted.

    :param events: the events, their file, or a memory sink.
    :param flag_key: the flag of the experiment.
    :param conversion_event: the event type of a conversion.
    :param where: user property to value, all of which must match; or a
        predicate given the user's properties at their first exposure as a
        dict.
    :param start: the start of the window (inclusive), a datetime (naive
        means UTC) or ms since the epoch; default: unbounded.
    :param end: the end of the window (exclusive), as ``start``.
    :param experiment_key: only the exposures of this run of the flag.
    :param options: passed on to :func:`readout` (``control``, ``weights``,
        ``alpha``, ``horizon``, ``baseline``, ``minimum_detectable_effect``,
        ...).
    :return: the :class:`Readout`.
    :raises ValueError: for an unknown file type, a line that is not a JSON
        event or an event without a usable time (naming the line or event),
        or no exposures of ``flag_key``; and as :func:`readout` raises.
    :raises OSError: when the file cannot be read.
    :raises ImportError: without scipy (``pip install 'flagstaff[experiment]'``).
    """
    if where is not None and not callable(where) and not isinstance(where, Mapping):
        raise TypeError("where is a mapping of user properties or a predicate")
    low, high = _window_bound(start, "start"), _window_bound(end, "end")
    if low is not None and high is not None and high <= low:
        raise ValueError("the window is empty: end is not after start")
    tally = _Tally(flag_key, conversion_event, where, low, high, experiment_key)
    if isinstance(events, (str, os.PathLike)):
        _read_path(os.fspath(events), tally)
    elif all(hasattr(events, name) for name in ("exposures", "tracked", "identifies")):
        _read_events(_sink_events(events), tally, "the sink's record")
    elif isinstance(events, (Mapping, bytes)):
        raise TypeError(f"events is an iterable of events, not {type(events).__name__}")
    else:
        _read_events(events, tally, "event")
    return tally.readout(options)


class _Tally:
    """
    Per user: the time and variant of the first exposure, a second variant
    if any, the time of the last conversion, and every value their
    properties took, with its time.
    """

    def __init__(
        self,
        flag_key: str,
        conversion_event: str,
        where: Optional[Where],
        low: Optional[float],
        high: Optional[float],
        experiment_key: Optional[str],
    ) -> None:
        self.flag_key = flag_key
        self.conversion_event = conversion_event
        self.where = where
        self.low = low
        self.high = high
        self.experiment_key = experiment_key
        #: user -> [time, variant] of the earliest exposure in the window
        self.first: dict[Any, list[Any]] = {}
        #: user -> a variant other than the first one they were exposed to
        self.other: dict[Any, Any] = {}
        #: user -> time of the latest conversion in the window
        self.converted: dict[Any, float] = {}
        #: user -> property -> [(time, value), ...] in the order read
        self.properties: dict[Any, dict[str, list[tuple[float, Any]]]] = {}
        self.tracks_properties = where is not None
        self.names = frozenset(where) if isinstance(where, Mapping) else None

    def add(
        self,
        event_type: Any,
        user: Any,
        time: Any,
        event_time: Any,
        event_properties: Any,
        user_properties: Any,
    ) -> None:
        """
        Takes one event.

        :raises _EventError: for an event without a usable time.
        """
        if user is None:
            return
        when = _event_time(time, event_time)
        high = self.high
        if high is not None and when >= high:
            return
        if user_properties and self.tracks_properties:
            self._learn(user, when, user_properties)
        low = self.low
        if low is not None and when < low:
            return
        if event_type in _EXPOSURE_TYPES:
            if not isinstance(event_properties, Mapping):
                if event_properties is None:
                    return
                raise _EventError("event_properties is not an object")
            self._expose(user, when, event_properties)
        elif event_type == self.conversion_event:
            last = self.converted.get(user)
            if last is None or when > last:
                self.converted[user] = when

    def readout(self, options: dict[str, Any]) -> Readout:
        """
        Reads the experiment from what the events told.

        :raises ValueError: without exposures of the flag, and as
            :func:`readout` raises.
        """
        if not self.first:
            raise ValueError(f"no exposures of the flag {self.flag_key!r}"
                             + self._scope())
        pairs, converted = [], set()
        left_out = converted_before = 0
        for user, (when, variant) in self.first.items():
            if self.where is not None and not self._matches(user, when):
                left_out += 1
                continue
            pairs.append((user, variant))
            other = self.other.get(user)
            if other is not None:
                pairs.append((user, other))
            last = self.converted.get(user)
            if last is not None:
                if last >= when:
                    converted.add(user)
                else:
                    converted_before += 1
        if not pairs:
            raise ValueError(f"no exposed users of the flag {self.flag_key!r} match "
                             f"where ({left_out:,} left out)")

        result = readout(pairs, converted, **options)
        notes = list(result.notes)
        if converted_before:
            notes.append(f"note: {converted_before:,} users converted only before "
                         "their first exposure; not counted as converted")
        if left_out:
            notes.append(f"note: {left_out:,} exposed users left out by where")
        return dataclasses.replace(result, notes=tuple(notes))

    def _expose(self, user: Any, when: float, properties: Mapping[str, Any]) -> None:
        if _first_of(properties, _FLAG_KEY) != self.flag_key:
            return
        if self.experiment_key is not None:
            if _first_of(properties, _EXPERIMENT_KEY) != self.experiment_key:
                return
        variant = _first_of(properties, _VARIANT)
        if variant is None:
            return
        entry = self.first.get(user)
        if entry is None:
            self.first[user] = [when, variant]
        elif variant != entry[1]:
            if when < entry[0]:
                self.other[user] = entry[1]
                entry[0], entry[1] = when, variant
            else:
                self.other[user] = variant
        elif when < entry[0]:
            entry[0] = when

    def _learn(self, user: Any, when: float, user_properties: Any) -> None:
        if not isinstance(user_properties, Mapping):
            raise _EventError("user_properties is not an object")
        known = self.properties.get(user)
        if known is None:
            known = self.properties[user] = {}
        names = self.names
        for name, value in user_properties.items():
            if not name.startswith("$"):
                # An exported event's snapshot of the user's properties.
                if names is None or name in names:
                    _remember(known, name, when, value)
                continue
            if not isinstance(value, Mapping):
                continue
            if name == "$set":
                for key, item in value.items():
                    if names is None or key in names:
                        _remember(known, key, when, item)
            elif name == "$unset":
                for key in value:
                    if names is None or key in names:
                        _remember(known, key, when, _UNSET)
            elif name == "$setOnce":
                for key, item in value.items():
                    if (names is None or key in names) and key not in known:
                        _remember(known, key, when, item)

    def _matches(self, user: Any, exposed_at: float) -> bool:
        known = self.properties.get(user, {})
        current = {}
        for name, history in known.items():
            value = _value_at(history, exposed_at)
            if value is not _UNSET:
                current[name] = value
        where = self.where
        if isinstance(where, Mapping):
            return all(current.get(name) == value for name, value in where.items())
        return bool(where(current))

    def _scope(self) -> str:
        parts = []
        if self.experiment_key is not None:
            parts.append(f"experiment key {self.experiment_key!r}")
        if self.low is not None or self.high is not None:
            parts.append("the window")
        return f" in {' and '.join(parts)}" if parts else ""


def _remember(
    known: dict[str, list[tuple[float, Any]]], name: str, when: float, value: Any
) -> None:
    history = known.get(name)
    if history is None:
        known[name] = [(when, value)]
    elif history[-1] != (when, value):
        history.append((when, value))


def _value_at(history: list[tuple[float, Any]], moment: float) -> Any:
    """
    The value a property had at `moment`: the one set last at or before it
    (of two set at the same time, the one read last), or else the first one
    set after it; :data:`_UNSET` when unset.
    """
    before = after = None
    for entry in history:
        if entry[0] <= moment:
            if before is None or entry[0] >= before[0]:
                before = entry
        elif after is None or entry[0] < after[0]:
            after = entry
    chosen = before if before is not None else after
    return _UNSET if chosen is None else chosen[1]


def _first_of(properties: Mapping[str, Any], names: tuple[str, str]) -> Any:
    value = properties.get(names[0])
    return properties.get(names[1]) if value is None else value


def _event_time(time: Any, event_time: Any) -> float:
    if time is not None:
        if type(time) is int or (type(time) is float and time == time):
            return time
        raise _EventError(f"time {time!r} is not ms since the epoch")
    if event_time is None:
        raise _EventError("the event has neither time nor event_time")
    if type(event_time) is not str:
        raise _EventError(f"event_time {event_time!r} is not text")
    try:
        moment = datetime.fromisoformat(event_time)
    except ValueError:
        raise _EventError(f"event_time {event_time!r} is not a time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _MS


def _window_bound(value: Optional[Time], name: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return (value - _EPOCH) / _MS
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise TypeError(f"{name} is a datetime or ms since the epoch, "
                    f"not {type(value).__name__}")


# -- reading -----------------------------------------------------------------


def _read_events(events: Iterable[Any], tally: _Tally, what: str) -> None:
    add = tally.add
    for number, event in enumerate(events):
        if type(event) is not dict and not isinstance(event, Mapping):
            raise ValueError(f"{what} {number}: not an event mapping "
                             f"but {type(event).__name__}")
        get = event.get
        user = get("user_id")
        if user is None:
            user = get("device_id")
        try:
            add(get("event_type"), user, get("time"), get("event_time"),
                get("event_properties"), get("user_properties"))
        except _EventError as exc:
            raise ValueError(f"{what} {number}: {exc}") from None


def _read_path(path: str, tally: _Tally) -> None:
    name = path.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.is_dir():
                    continue
                where = f"{path}: {member.filename}"
                opener = _opener(member.filename)
                if opener is None:
                    raise ValueError(f"{where}: an export zip holds .json or "
                                     ".json.gz files")
                with archive.open(member) as raw, opener(raw) as lines:
                    _read_lines(lines, tally, where)
        return
    if _opener(name) is None:
        hint = (" (a .parquet or .csv table is read by readout())"
                if name.endswith((".parquet", ".pq", ".csv", ".csv.gz")) else "")
        raise ValueError(f"{path}: reads .json or .jsonl lines, gzipped or not "
                         f"(.gz), or an export .zip{hint}")
    with open(path, "rb") as raw, _opener(name)(raw) as lines:
        _read_lines(lines, tally, path)


def _opener(
    name: str,
) -> Optional[Callable[[IO[bytes]], AbstractContextManager[IO[bytes]]]]:
    name = name.lower()
    if name.endswith((".json.gz", ".jsonl.gz")):
        return lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")
    if name.endswith((".json", ".jsonl")):
        # The file's own ``with`` closes it.
        return contextlib.nullcontext
    return None


def _read_lines(lines: Iterable[bytes], tally: _Tally, where: str) -> None:
    kind = _Line if tally.tracks_properties else _LineWithoutProperties
    decode = msgspec.json.Decoder(kind).decode
    add = tally.add
    number = 0
    try:
        for number, line in enumerate(lines, 1):
            if line.isspace():
                continue
            event = decode(line)
            user = event.user_id
            if user is None:
                user = event.device_id
            add(event.event_type, user, event.time, event.event_time,
                event.event_properties, event.user_properties)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{where}, line {number}: not an event object ({exc})"
                         ) from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"{where}, line {number}: not JSON ({exc})") from None
    except _EventError as exc:
        raise ValueError(f"{where}, line {number}: {exc}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error, zipfile.BadZipFile) as exc:
        raise ValueError(f"{where}, after line {number}: a broken file ({exc})"
                         ) from None


def _sink_events(sink: Any) -> Iterator[dict[str, Any]]:
    for identify in sink.identifies:
        operations: dict[str, Any] = {"$set": identify.properties}
        fields = identify.fields
        if fields.get("set_once"):
            operations["$setOnce"] = fields["set_once"]
        if fields.get("unset"):
            unset = fields["unset"]
            unset = [unset] if isinstance(unset, str) else unset
            operations["$unset"] = {name: "-" for name in unset}
        yield {"event_type": "$identify", "user_id": identify.user_id,
               "time": _record_time(identify), "user_properties": operations}
    for exposure in sink.exposures:
        properties = {"flag_key": exposure.flag_key, "variant": exposure.variant,
                      "experiment_key": getattr(exposure, "experiment_key", None)}
        yield {"event_type": "$exposure", "user_id": exposure.user_id,
               "time": _record_time(exposure), "event_properties": properties}
    for tracked in sink.tracked:
        yield {"event_type": tracked.event_type, "user_id": tracked.user_id,
               "time": _record_time(tracked),
               "event_properties": tracked.event_properties,
               "user_properties": tracked.fields.get("user_properties")}


def _record_time(record: Any) -> Any:
    when = getattr(record, "time", None)
    if when is None:
        when = getattr(record, "fields", {}).get("time")
    if isinstance(when, datetime):
        return _window_bound(when, "time")
    return when
