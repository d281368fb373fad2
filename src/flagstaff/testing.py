"""
Test helpers for code that uses flagstaff, a pytest plugin that a project
loads with one line in its ``conftest.py``::

    pytest_plugins = ["flagstaff.testing"]

Three things a test of an application needs:

- :class:`ConfigBuilder` with :func:`when` writes a config_v6 JSON that reads
  like the flag it describes::

      config = (
          ConfigBuilder()
          .flag("onboardingFeature", "default", rules=[
              when("plan").is_one_of("free").split(
                  {"default": 25, "feature1": 25, "feature2": 25, "feature3": 25}
              ),
          ])
          .flag("beta", False)
      )

- the ``flagstaff_cdn`` fixture serves such configs on 127.0.0.1 under
  ConfigCat's CDN path (``publish(sdk_key, config)``, ``url``), and
  ``flagstaff_client_factory`` makes a :class:`flagstaff.Client` that reads
  from it;
- :class:`MemorySink` (fixture ``flagstaff_events``) stands in for the
  :class:`~flagstaff.AmplitudeEmitter` and keeps what it was given, so that
  a test asserts on exposures, assignments, tracked events and identifies.

Nothing runs when the plugin loads: the CDN server starts the first time a
test asks for ``flagstaff_cdn`` and stops at the end of the session, and no
fixture is autouse. uvicorn, which runs the CDN, is needed only then
(``pip install flagstaff[relay]``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional, Union

import pytest

if TYPE_CHECKING:
    from flagstaff import Client, Config
    from flagstaff.experiment import Readout

__all__ = (
    "CDN",
    "Condition",
    "Conditions",
    "ConfigBuilder",
    "Exposure",
    "Identify",
    "MemorySink",
    "Rule",
    "Tracked",
    "sdk_key_for",
    "when",
)

Value = Union[bool, str, int, float]
ConfigSource = Union[str, bytes, Mapping[str, Any], "ConfigBuilder"]

# ConfigCat's setting types and the SettingValue field each one uses (§1).
_BOOL, _STRING, _INT, _DOUBLE = 0, 1, 2, 3
_FIELDS = {_BOOL: "b", _STRING: "s", _INT: "i", _DOUBLE: "d"}


# -- the config builder ------------------------------------------------------


def _type_of(value: Value) -> int:
    # bool before int: True is an int to Python, not to ConfigCat.
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, str):
        return _STRING
    if isinstance(value, int):
        return _INT
    if isinstance(value, float):
        return _DOUBLE
    raise TypeError(f"a flag serves a bool, str, int or float, not {value!r}")


def _setting_value(setting_type: int, value: Value) -> dict[str, Value]:
    given = _type_of(value)
    # A whole number is a fine value of a decimal setting; nothing else mixes.
    if given != setting_type and not (given == _INT and setting_type == _DOUBLE):
        raise TypeError(
            f"{value!r} does not fit a setting of type {setting_type} "
            "(0 bool, 1 string, 2 int, 3 double)"
        )
    return {_FIELDS[setting_type]: float(value) if setting_type == _DOUBLE else value}


def _variation_id(key: str, value: Value) -> str:
    # Stable across runs, so that tests may assert on it.
    return hashlib.sha1(f"{key}\0{value!r}".encode()).hexdigest()[:8]


def _unix_seconds(moment: Union[datetime, float]) -> float:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return float(moment)


@dataclasses.dataclass(frozen=True)
class Condition:
    """
    One user condition (``{"a", "c", "s" | "d" | "l"}``); made by :func:`when`.

    ``a & b`` is a rule's list of conditions, all of which must hold.
    """

    attribute: str
    comparator: int
    #: "s" (text), "d" (number) or "l" (list of texts)
    field: str
    operand: Any

    def to_dict(self) -> dict[str, Any]:
        """
        The condition as config_v6 writes it, wrapped in ``{"u": ...}``.
        """
        condition = {"a": self.attribute, "c": self.comparator}
        return {"u": {**condition, self.field: self.operand}}

    def __and__(self, other: Union[Condition, Conditions]) -> Conditions:
        return Conditions((self,)) & other

    def serve(self, value: Value) -> Rule:
        """
        A targeting rule that serves `value` to the users who match.
        """
        return Conditions((self,)).serve(value)

    def split(self, percentages: Mapping[Value, int]) -> Rule:
        """
        A targeting rule that splits the users who match by percentage.
        """
        return Conditions((self,)).split(percentages)


@dataclasses.dataclass(frozen=True)
class Conditions:
    """
    Conditions that must all hold; ``when(a)... & when(b)...`` makes one.
    """

    items: tuple[Condition, ...]

    def __and__(self, other: Union[Condition, Conditions]) -> Conditions:
        more = (other,) if isinstance(other, Condition) else other.items
        return Conditions(self.items + more)

    def serve(self, value: Value) -> Rule:
        """
        A targeting rule that serves `value` to the users who match.
        """
        return Rule(self.items, value=value)

    def split(self, percentages: Mapping[Value, int]) -> Rule:
        """
        A targeting rule that splits the users who match by percentage.
        """
        return Rule(self.items, percentages=dict(percentages))


@dataclasses.dataclass(frozen=True)
class Rule:
    """
    A targeting rule: conditions, then a served value or a percentage split.
    """

    conditions: tuple[Condition, ...]
    value: Optional[Value] = None
    percentages: Optional[dict[Value, int]] = None


class _Attribute:
    """The comparators that can follow ``when(attribute)`` (§3 of the spec)."""

    def __init__(self, attribute: str) -> None:
        self._attribute = attribute

    def _make(self, comparator: int, field: str, operand: Any) -> Condition:
        return Condition(self._attribute, comparator, field, operand)

    def _texts(self, comparator: int, values: Sequence[str]) -> Condition:
        if not values:
            raise ValueError("the condition needs at least one value")
        return self._make(comparator, "l", [str(value) for value in values])

    def is_one_of(self, *values: str) -> Condition:
        """The attribute equals one of `values` (comparator 0)."""
        return self._texts(0, values)

    def is_not_one_of(self, *values: str) -> Condition:
        """The attribute equals none of `values` (comparator 1)."""
        return self._texts(1, values)

    def contains_any_of(self, *values: str) -> Condition:
        """The attribute contains one of `values` (comparator 2)."""
        return self._texts(2, values)

    def not_contains_any_of(self, *values: str) -> Condition:
        """The attribute contains none of `values` (comparator 3)."""
        return self._texts(3, values)

    def equals(self, value: str) -> Condition:
        """The attribute is the text `value` (comparator 28)."""
        return self._make(28, "s", str(value))

    def not_equals(self, value: str) -> Condition:
        """The attribute is not the text `value` (comparator 29)."""
        return self._make(29, "s", str(value))

    def starts_with_any_of(self, *values: str) -> Condition:
        """The attribute starts with one of `values` (comparator 30)."""
        return self._texts(30, values)

    def ends_with_any_of(self, *values: str) -> Condition:
        """The attribute ends with one of `values` (comparator 32)."""
        return self._texts(32, values)

    def array_contains_any_of(self, *values: str) -> Condition:
        """The attribute, a list of texts, holds one of `values` (comparator 34)."""
        return self._texts(34, values)

    def version_less_than(self, version: str) -> Condition:
        """The attribute is a semantic version before `version` (comparator 6)."""
        return self._make(6, "s", version)

    def version_at_least(self, version: str) -> Condition:
        """The attribute is a semantic version `version` or later (comparator 9)."""
        return self._make(9, "s", version)

    def number_equals(self, number: float) -> Condition:
        """The attribute is the number `number` (comparator 10)."""
        return self._make(10, "d", float(number))

    def less_than(self, number: float) -> Condition:
        """The attribute is a number below `number` (comparator 12)."""
        return self._make(12, "d", float(number))

    def at_most(self, number: float) -> Condition:
        """The attribute is a number no greater than `number` (comparator 13)."""
        return self._make(13, "d", float(number))

    def greater_than(self, number: float) -> Condition:
        """The attribute is a number above `number` (comparator 14)."""
        return self._make(14, "d", float(number))

    def at_least(self, number: float) -> Condition:
        """The attribute is a number no less than `number` (comparator 15)."""
        return self._make(15, "d", float(number))

    def before(self, moment: Union[datetime, float]) -> Condition:
        """The attribute is a time before `moment` (comparator 18)."""
        return self._make(18, "d", _unix_seconds(moment))

    def after(self, moment: Union[datetime, float]) -> Condition:
        """The attribute is a time after `moment` (comparator 19)."""
        return self._make(19, "d", _unix_seconds(moment))


def when(attribute: str) -> _Attribute:
    """
    Starts a user condition on `attribute` (``"Identifier"``, ``"Email"``,
    ``"Country"`` or a custom attribute): ``when("plan").is_one_of("free")``.
    """
    return _Attribute(attribute)


class ConfigBuilder:
    """
    Builds a config_v6 JSON, one flag at a time.

    :param salt: the config salt (``p.s``); it only matters to hashed
        comparisons, which the builder does not write.
    """

    def __init__(self, salt: str = "flagstaff-testing-salt") -> None:
        self.salt = salt
        self._settings: dict[str, dict[str, Any]] = {}

    def flag(
        self,
        key: str,
        value: Value,
        *,
        rules: Iterable[Rule] = (),
        split: Optional[Mapping[Value, int]] = None,
        attribute: Optional[str] = None,
    ) -> ConfigBuilder:
        """
        Adds (or replaces) the setting `key`, whose type follows `value`.

        :param value: served to the users no rule and no split took.
        :param rules: targeting rules, tried in order; the first match wins.
        :param split: percentage options for the users no rule took,
            ``{served value: percent}``, adding up to 100.
        :param attribute: the user attribute the percentages hash (default:
            the identifier).
        :return: the builder, to chain calls.
        :raises TypeError: when a value does not fit the setting's type.
        :raises ValueError: when percentages do not add up to 100.
        """
        setting_type = _type_of(value)
        setting: dict[str, Any] = {"t": setting_type}
        if attribute is not None:
            setting["a"] = attribute
        encoded = [self._rule(key, setting_type, rule) for rule in rules]
        if encoded:
            setting["r"] = encoded
        if split is not None:
            setting["p"] = self._options(key, setting_type, split)
        setting["v"] = _setting_value(setting_type, value)
        setting["i"] = _variation_id(key, value)
        self._settings[key] = setting
        return self

    def to_dict(self) -> dict[str, Any]:
        """
        The config as a JSON-ready dict.
        """
        preferences = {"u": "https://cdn-global.configcat.com", "r": 0, "s": self.salt}
        return {"p": preferences, "f": json.loads(json.dumps(self._settings))}

    def to_json(self) -> str:
        """
        The config as config_v6 JSON text.
        """
        return json.dumps(self.to_dict())

    def to_config(self) -> Config:
        """
        The config compiled: a :class:`flagstaff.Config` to evaluate.
        """
        from flagstaff import Config

        return Config.from_json(self.to_json())

    def _rule(self, key: str, setting_type: int, rule: Rule) -> dict[str, Any]:
        if not rule.conditions:
            raise ValueError(f"a rule of {key!r} has no condition")
        encoded: dict[str, Any] = {"c": [c.to_dict() for c in rule.conditions]}
        if rule.percentages is not None:
            encoded["p"] = self._options(key, setting_type, rule.percentages)
        elif rule.value is not None:
            served = _setting_value(setting_type, rule.value)
            encoded["s"] = {"v": served, "i": _variation_id(key, rule.value)}
        else:
            raise ValueError(f"a rule of {key!r} serves no value and no split")
        return encoded

    def _options(
        self, key: str, setting_type: int, percentages: Mapping[Value, int]
    ) -> list[dict[str, Any]]:
        total = sum(percentages.values())
        if total != 100 or any(p < 0 for p in percentages.values()):
            raise ValueError(f"the percentages of {key!r} add up to {total}, not 100")
        return [
            {
                "p": percent,
                "v": _setting_value(setting_type, value),
                "i": _variation_id(key, value),
            }
            for value, percent in percentages.items()
        ]


def sdk_key_for(name: str) -> str:
    """
    An SDK key of ConfigCat's format, made up from `name` (the same for
    the same name), for a test to publish and fetch a config under.
    """
    digest = hashlib.sha256(name.encode()).hexdigest()
    return f"configcat-sdk-1/{digest[:22]}/{digest[22:44]}"


def _text_of(config: ConfigSource) -> str:
    if isinstance(config, ConfigBuilder):
        return config.to_json()
    if isinstance(config, bytes):
        return config.decode()
    if isinstance(config, str):
        return config
    return json.dumps(config)


# -- the CDN -----------------------------------------------------------------

_PATH_HEAD = "/configuration-files/"
_PATH_TAIL = "/config_v6.json"


class CDN:
    """
    A stand-in for ConfigCat's CDN: an ASGI app serving
    ``GET /configuration-files/<sdk_key>/config_v6.json`` from memory, with
    a strong ETag and 304 for a matching ``If-None-Match``.

    ``url`` is set while a server runs it (the ``flagstaff_cdn`` fixture).
    """

    def __init__(self) -> None:
        self.url = ""
        self._configs: dict[str, str] = {}
        self._requests: list[str] = []
        self._lock = threading.Lock()

    def publish(self, sdk_key: str, config: ConfigSource) -> None:
        """
        Serves `config` (JSON text, a dict or a :class:`ConfigBuilder`) for
        `sdk_key` from now on.
        """
        text = _text_of(config)
        with self._lock:
            self._configs[sdk_key] = text

    def unpublish(self, sdk_key: str) -> None:
        """
        Answers 404 for `sdk_key` from now on.
        """
        with self._lock:
            self._configs.pop(sdk_key, None)

    def requests_for(self, sdk_key: str) -> int:
        """
        How many requests for `sdk_key` arrived.
        """
        with self._lock:
            return self._requests.count(sdk_key)

    def reset(self) -> None:
        """
        Forgets every config and request.
        """
        with self._lock:
            self._configs = {}
            self._requests = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        status, body, headers = 404, b"", []
        if (
            scope["method"] == "GET"
            and path.startswith(_PATH_HEAD)
            and path.endswith(_PATH_TAIL)
        ):
            sdk_key = path[len(_PATH_HEAD) : -len(_PATH_TAIL)]
            with self._lock:
                self._requests.append(sdk_key)
                text = self._configs.get(sdk_key)
            if text is not None:
                status, body, headers = self._answer(text, scope["headers"])
        start = {"type": "http.response.start", "status": status}
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _answer(
        text: str, request_headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        etag = ('"' + hashlib.sha1(text.encode()).hexdigest()[:20] + '"').encode()
        match = b"".join(v for k, v in request_headers if k.lower() == b"if-none-match")
        tags = {tag.strip().removeprefix(b"W/") for tag in match.split(b",")}
        if etag in tags:
            return 304, b"", [(b"etag", etag)]
        content = (b"content-type", b"application/json")
        return 200, text.encode(), [content, (b"etag", etag)]


@contextmanager
def _serve(app: CDN) -> Iterator[CDN]:
    """Runs `app` under uvicorn on 127.0.0.1 in a thread until the block ends."""
    try:
        from flagstaff.relay._server import serve_in_thread
    except ImportError as exc:
        raise RuntimeError(
            "the flagstaff_cdn fixture runs its server with uvicorn, which is "
            "not installed: pip install 'flagstaff[relay]' (or uvicorn)"
        ) from exc

    with serve_in_thread(app, "CDN") as url:
        app.url = url
        yield app


# -- the event sink ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exposure:
    """
    One exposure the client reported: who saw which variant of which flag.
    """

    flag_key: str
    #: the served value as Amplitude's analysis groups it ("true", "feature1")
    variant: Optional[str]
    value: Any
    variation_id: Optional[str]
    user_id: Optional[str]
    details: Any
    experiment_key: Optional[str] = None
    #: when it was reported, in ms since the epoch
    time: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Tracked:
    """
    One event given to ``track``, such as a conversion.
    """

    event_type: str
    user_id: Optional[str]
    event_properties: dict[str, Any]
    fields: dict[str, Any]
    #: the ``time`` given, or when it was tracked, in ms since the epoch
    time: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Identify:
    """
    One ``identify``: the properties set on a user.
    """

    user_id: Optional[str]
    properties: dict[str, Any]
    fields: dict[str, Any]
    #: the ``time`` given, or when it was recorded, in ms since the epoch
    time: Optional[int] = None


class MemorySink:
    """
    Takes the events an :class:`~flagstaff.AmplitudeEmitter` would, and keeps
    them in lists for a test: pass it as a :class:`~flagstaff.Client`'s
    ``emitter`` and assert on :attr:`exposures`, :attr:`assignments`,
    :attr:`tracked` and :attr:`identifies`.

    Like the emitter, it leaves out evaluations without a user id and, unless
    ``skip_defaults=False``, those that served the default or failed; unlike
    it, it keeps repeats (there is no dedup window) and sends nothing. Each
    record has its ``time``: the one given, or when it was recorded.
    """

    def __init__(self, *, skip_defaults: bool = True) -> None:
        self.skip_defaults = skip_defaults
        self.exposures: list[Exposure] = []
        #: per ``assignment`` call: flag key -> variant
        self.assignments: list[dict[str, Optional[str]]] = []
        self.tracked: list[Tracked] = []
        self.identifies: list[Identify] = []
        #: evaluations left out, as the emitter's ``exposures_skipped``
        self.skipped = 0

    def exposure(
        self,
        details: Any,
        *,
        user_id: Optional[str] = None,
        experiment_key: Optional[str] = None,
        time: Union[int, datetime, None] = None,
        **fields: Any,
    ) -> bool:
        """
        Records the exposure of one evaluation.

        :param time: when it happened, ms since the epoch or a datetime
            (default: now); the emitter takes no time, its clock's now.
        :return: True when recorded; False when skipped.
        """
        from flagstaff.amplitude._events import variant_of

        if self._skips(details):
            self.skipped += 1
            return False
        user_id = user_id or getattr(details.user, "identifier", None)
        if user_id is None:
            self.skipped += 1
            return False
        variant = variant_of(details.value, details.variation_id)
        value, variation_id = details.value, details.variation_id
        self.exposures.append(
            Exposure(
                details.key, variant, value, variation_id, user_id, details,
                experiment_key, _ms_of(time),
            )
        )
        return True

    def assignment(
        self,
        evaluations: Iterable[Any],
        *,
        user_id: Optional[str] = None,
        **fields: Any,
    ) -> bool:
        """
        Records the evaluations of one user together, as one assignment.

        :return: True when recorded; False when nothing was left to record.
        """
        from flagstaff.amplitude._events import variant_of

        variants: dict[str, Optional[str]] = {}
        for details in evaluations:
            if self._skips(details):
                continue
            variants[details.key] = variant_of(details.value, details.variation_id)
            if user_id is None:
                user_id = getattr(details.user, "identifier", None)
        if not variants or user_id is None:
            self.skipped += 1
            return False
        self.assignments.append(variants)
        return True

    def track(
        self,
        event_type: str,
        *,
        user_id: Optional[str] = None,
        user: Any = None,
        event_properties: Optional[Mapping[str, Any]] = None,
        **fields: Any,
    ) -> bool:
        """
        Records an event, such as a conversion. :return: True.
        """
        if user_id is None and user is not None:
            user_id = getattr(user, "identifier", None)
        properties = dict(event_properties or {})
        when = _ms_of(fields.get("time"))
        self.tracked.append(Tracked(event_type, user_id, properties, fields, when))
        return True

    def identify(
        self,
        user_id: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        *,
        user: Any = None,
        **fields: Any,
    ) -> bool:
        """
        Records the properties set on a user. :return: True.
        """
        if user_id is None and user is not None:
            user_id = getattr(user, "identifier", None)
        when = _ms_of(fields.get("time"))
        self.identifies.append(
            Identify(user_id, dict(properties or {}), fields, when)
        )
        return True

    def variants_of(self, flag_key: str) -> dict[str, Optional[str]]:
        """
        The last variant each user was exposed to for `flag_key`: user id ->
        variant.
        """
        exposures = [e for e in self.exposures if e.flag_key == flag_key]
        return {e.user_id: e.variant for e in exposures if e.user_id is not None}

    def events(self, event_type: str) -> list[Tracked]:
        """
        The tracked events of one type, oldest first.
        """
        return [event for event in self.tracked if event.event_type == event_type]

    def readout(self, flag_key: str, **options: Any) -> Readout:
        """
        Reads the experiment on one flag from the recorded events, as
        :func:`flagstaff.experiment.readout_from_events` does (conversions
        count only at or after the user's first exposure).

        :param options: ``readout_from_events``'s (``conversion_event``,
            ``where``, ``start``, ``end``, ``control``, ``weights``, ...).
        :return: the :class:`~flagstaff.experiment.Readout`.
        :raises ValueError: when nothing exposed anyone to ``flag_key``.
        """
        from flagstaff.experiment import readout_from_events

        return readout_from_events(self, flag_key, **options)

    def clear(self) -> None:
        """
        Forgets every recorded event.
        """
        self.exposures.clear()
        self.assignments.clear()
        self.tracked.clear()
        self.identifies.clear()
        self.skipped = 0

    def _skips(self, details: Any) -> bool:
        return self.skip_defaults and (
            details.is_default_value or details.error is not None
        )


def _ms_of(when: Union[int, datetime, None]) -> int:
    if when is None:
        return time.time_ns() // 1_000_000
    if isinstance(when, datetime):
        # As the emitter converts it (a naive datetime is local time).
        return int(when.timestamp() * 1000)
    return when


# -- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="session")
def _flagstaff_cdn_server() -> Iterator[CDN]:
    with _serve(CDN()) as app:
        yield app


@pytest.fixture
def flagstaff_cdn(_flagstaff_cdn_server: CDN) -> Iterator[CDN]:
    """
    A fake ConfigCat CDN on 127.0.0.1, empty at the start of the test:
    ``flagstaff_cdn.publish(sdk_key, config)``, then point a client at
    ``flagstaff_cdn.url``. One server runs for the session.
    """
    _flagstaff_cdn_server.reset()
    yield _flagstaff_cdn_server
    _flagstaff_cdn_server.reset()


@pytest.fixture
def flagstaff_events() -> MemorySink:
    """
    A :class:`MemorySink` to pass as a client's ``emitter``.
    """
    return MemorySink()


@pytest.fixture
def flagstaff_client_factory(flagstaff_cdn: CDN) -> Callable[..., Client]:
    """
    Makes :class:`flagstaff.Client` objects that download from
    ``flagstaff_cdn``: ``factory(sdk_key, config=None, **client_kwargs)``.

    With `config`, it is published for `sdk_key` first. The client is not
    open: use it as ``async with factory(key) as client``. The polling mode
    defaults to ``AutoPoll`` with a short initial wait.
    """
    from flagstaff import AutoPoll, Client

    def factory(
        sdk_key: str, config: Optional[ConfigSource] = None, **kwargs: Any
    ) -> Client:
        if config is not None:
            flagstaff_cdn.publish(sdk_key, config)
        kwargs.setdefault("polling", AutoPoll(max_init_wait=5))
        kwargs.setdefault("base_url", flagstaff_cdn.url)
        return Client(sdk_key, **kwargs)

    return factory
