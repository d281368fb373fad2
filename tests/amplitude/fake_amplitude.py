"""
A fake Amplitude ingestion server (amplitude.md §4): a plain ASGI app, and a
uvicorn server thread (or process) to run it on 127.0.0.1 only.

It parses and validates requests the way amplitude.md describes Amplitude:
the request checks in their order, 413 on the configured limits, per-event
validation with Amplitude's 400 bodies (every bad index, or only the first),
silenced devices, 429 with throttled users, devices and daily quotas from a
sliding window (and scripted throttles), insert-id dedup per project and
device, and a fake clock. Faults are scripted per request: a status with or
without ingestion, any body (HTML, empty), a delay or a hang, a connection
dropped mid-answer. It records every request and keeps the deduplicated
store of ingested events for the tests' assertions.

Run as a script it serves one app in its own process, for load tests:
``python fake_amplitude.py --port 0`` prints ``listening on <url>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import random
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional
from urllib.parse import parse_qs

import anyio
import msgspec
import uvicorn

HOST = "127.0.0.1"
API_KEY = "fake-amplitude-api-key-0123456789"

#: the longest a hanging or delayed answer waits before it gives up
MAX_WAIT = 30.0

INVALID_IDS = frozenset(
    {
        "anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown",
        '""', "00000000-0000-0000-0000-000000000000", "{}", "lmy47d", "0", "-1", "",
    }
)
MAX_STRING = 1024
MAX_DEPTH = 40
WINDOW = 30.0           # seconds of the EPS sliding window
DAY = 86_400.0

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclasses.dataclass
class Limits:
    """The limits of one path; tests lower them to exercise 413 and 429."""

    max_events: int
    max_bytes: int
    #: events per second per user or device over the window; None: no limit
    eps_threshold: Optional[float]


def default_limits() -> dict[str, Limits]:
    return {
        "/2/httpapi": Limits(2000, 1_000_000, 30),
        "/batch": Limits(2000, 20_000_000, 1000),
    }


@dataclasses.dataclass(frozen=True)
class Received:
    """One request, and what the fake answered."""

    method: str
    path: str
    #: header names in lower case
    headers: dict[str, str]
    #: the body after gzip decompression (b"" when not recorded)
    body: bytes
    #: the events of a parsed request, else []
    events: list
    status: int
    response: bytes
    #: the fake clock when it arrived
    time: float
    #: the fault that answered, if any
    fault: Optional[str]

    def json(self) -> Any:
        return _decode(self.body)


@dataclasses.dataclass
class Fault:
    """A scripted misbehaviour; `matches()` decides which requests get it."""

    kind: str                     # status | body | hang | reset | slow
    status: int = 500
    ingest: bool = False
    body: Optional[bytes] = None
    content_type: bytes = b"application/json"
    seconds: float = 0.0
    path: Optional[str] = None
    user_id: Optional[str] = None
    times: Optional[int] = None   # the next N matching requests
    every: Optional[int] = None   # every k-th matching request
    probability: Optional[float] = None
    seed: int = 0
    _count: int = 0
    _rng: Optional[random.Random] = None

    def matches(self, path: str, events: list) -> bool:
        if self.path is not None and path != self.path:
            return False
        if self.user_id is not None and not any(
            isinstance(e, dict) and e.get("user_id") == self.user_id for e in events
        ):
            return False
        if self.times is not None and self.times <= 0:
            return False
        self._count += 1
        if self.every is not None and self._count % self.every != 0:
            return False
        if self.probability is not None:
            if self._rng is None:
                self._rng = random.Random(self.seed)
            if self._rng.random() >= self.probability:
                return False
        if self.times is not None:
            self.times -= 1
        return True

    @property
    def name(self) -> str:
        suffix = "+ingest" if self.ingest else ""
        return f"{self.kind}:{self.status}{suffix}" if self.kind in ("status", "body") else (
            f"{self.kind}{suffix}"
        )


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level - 1


def _truncate(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        return (value[:MAX_STRING], True) if len(value) > MAX_STRING else (value, False)
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            out[key], cut = _truncate(item)
            changed |= cut
        return (out, True) if changed else (value, False)
    if isinstance(value, list):
        pairs = [_truncate(item) for item in value]
        if any(cut for _, cut in pairs):
            return [item for item, _ in pairs], True
        return value, False
    return value, False


def _json(status: int, **fields: Any) -> tuple[int, bytes]:
    return status, _encode({"code": status, **fields})


class FakeAmplitude:
    """
    The ASGI app. All knobs are plain attributes; change them between
    requests (from the test thread) and call :meth:`reset` between tests.
    """

    def __init__(self, api_keys: tuple[str, ...] = (API_KEY,), record: bool = True) -> None:
        self._lock = threading.RLock()
        self._default_keys = set(api_keys)
        self.record = record
        self.reset()

    # -- control, called from the test thread -----------------------------

    def reset(self) -> None:
        """
        Back to the defaults: no faults, no throttles, nothing stored, every
        hang released.
        """
        with getattr(self, "_lock", threading.RLock()):
            release = getattr(self, "_release", None)
            if release is not None:
                release.set()
            self._release = threading.Event()
            self.api_keys = set(self._default_keys)
            self.limits = default_limits()
            self.first_index_only = False
            self.min_id_length = 5
            self.silenced_devices: set[str] = set()
            self.reject_event_types: set[str] = set()
            self.daily_quota: Optional[int] = None
            self.throttle_cooldown = 30.0
            self.dedup_window = 7 * DAY
            self.faults: list[Fault] = []
            self._offset = 0.0
            self._scripted: dict[tuple[str, str], Optional[float]] = {}
            self._windows: dict[tuple[str, str], deque] = {}
            self._daily: dict[tuple[str, str], deque] = {}
            self._cooldown: dict[tuple[str, str], float] = {}
            self.requests: list[Received] = []
            self.store: dict[tuple, dict] = {}
            self.events: list[dict] = []
            self.truncated: list[tuple[Optional[str], str]] = []
            self.identifications: list[dict] = []
            self.identify_updates: Counter = Counter()
            self.duplicates = 0
            self.received_events = 0
            self.request_count = 0
            self._unique = 0
            self._generation = getattr(self, "_generation", 0) + 1

    def now(self) -> float:
        """The fake clock: monotonic time plus every :meth:`advance`."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Moves the fake clock forward (throttle windows, cool-downs, dedup)."""
        with self._lock:
            self._offset += seconds

    def release(self) -> None:
        """Lets every hanging request go on now."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()

    def fault(self, kind: str = "status", **options: Any) -> Fault:
        """Adds a scripted fault (first added, first matched); returns it."""
        fault = Fault(kind, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail(self, status: int, **options: Any) -> Fault:
        """Answers ``status`` with Amplitude's JSON body (``ingest=True``:
        after storing the events)."""
        return self.fault("status", status=status, **options)

    def answer(self, status: int, body: bytes, content_type: bytes = b"text/html",
               **options: Any) -> Fault:
        """Answers ``status`` with ``body`` as it is (HTML, empty, not JSON)."""
        return self.fault("body", status=status, body=body, content_type=content_type,
                          **options)

    def hang(self, seconds: float = MAX_WAIT, **options: Any) -> Fault:
        """Holds requests for ``seconds`` or until :meth:`release`; then, with
        ``ingest=True``, stores and answers 200, else 503."""
        return self.fault("hang", seconds=seconds, **options)

    def slow(self, seconds: float, **options: Any) -> Fault:
        """Waits ``seconds``, then answers normally."""
        return self.fault("slow", seconds=seconds, **options)

    def reset_connection(self, **options: Any) -> Fault:
        """Drops the connection in the middle of the answer (``ingest=True``:
        after storing)."""
        return self.fault("reset", **options)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults = []

    def throttle(self, user_id: Optional[str] = None, device_id: Optional[str] = None,
                 seconds: Optional[float] = None) -> None:
        """Answers 429 for this id regardless of its rate, for ``seconds`` of
        the fake clock (or until :meth:`unthrottle`)."""
        until = None if seconds is None else self.now() + seconds
        with self._lock:
            if user_id is not None:
                self._scripted[("u", user_id)] = until
            if device_id is not None:
                self._scripted[("d", device_id)] = until

    def unthrottle(self) -> None:
        with self._lock:
            self._scripted = {}
            self._cooldown = {}

    # -- inspection ---------------------------------------------------------

    def received_requests(self, path: Optional[str] = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def ingested_events(self) -> list[dict]:
        with self._lock:
            return list(self.events)

    def duplicates_dropped(self) -> int:
        return self.duplicates

    def stored_ids(self) -> Counter:
        """How many times each insert id is in the store (1, if all is well)."""
        with self._lock:
            return Counter(e.get("insert_id") for e in self.events)

    def assert_exactly_once(self, insert_ids: Any) -> None:
        """Every one of ``insert_ids`` is stored once, and nothing else is."""
        stored = self.stored_ids()
        expected = Counter(insert_ids)
        assert all(count == 1 for count in expected.values()), "expected ids repeat"
        assert stored == expected, (
            f"missing {sorted(set(expected) - set(stored))[:5]}, "
            f"unexpected {sorted(set(stored) - set(expected))[:5]}, "
            f"repeated {[k for k, c in stored.items() if c > 1][:5]}"
        )

    def max_request_events(self, path: Optional[str] = None) -> int:
        return max((len(r.events) for r in self.received_requests(path)), default=0)

    def max_request_bytes(self, path: Optional[str] = None) -> int:
        return max((len(r.body) for r in self.received_requests(path)), default=0)

    def arrivals(self, user_id: str) -> list[float]:
        """The fake-clock times of requests that carried events of a user."""
        return [
            r.time for r in self.received_requests()
            if any(isinstance(e, dict) and e.get("user_id") == user_id for e in r.events)
        ]

    # -- the ASGI app -------------------------------------------------------

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        path, method = scope["path"], scope["method"]
        if path.startswith("/__fake__/"):
            status, body = self._control(method, path)
            await _respond(send, status, body, b"application/json")
            return
        with self._lock:
            release, generation = self._release, self._generation
        arrived = self.now()
        status, body, content_type, fault, events, plain = await self._answer(
            method, path, headers, raw, release, generation
        )
        with self._lock:
            if generation != self._generation:
                return  # a request held across a reset belongs to an old test
            self.request_count += 1
            self.received_events += len(events)
            if self.record:
                self.requests.append(Received(
                    method, path, headers, plain, events, status, body, arrived,
                    fault.name if fault else None,
                ))
        if fault is not None and fault.kind == "reset":
            # Promise a body, send part of it, and leave: the server has to
            # drop the connection in the middle of the answer.
            start = {"type": "http.response.start", "status": 200,
                     "headers": [(b"content-length", b"1000")]}
            await send(start)
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            return
        await _respond(send, status, body, content_type)

    def _control(self, method: str, path: str) -> tuple[int, bytes]:
        if path == "/__fake__/stats":
            with self._lock:
                return 200, _encode({
                    "ingested": len(self.events), "duplicates": self.duplicates,
                    "requests": self.request_count, "received_events": self.received_events,
                })
        if path == "/__fake__/reset" and method == "POST":
            self.reset()
            return 200, b"{}"
        return 404, b"{}"

    async def _answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes,
        release: threading.Event, generation: int,
    ) -> tuple[int, bytes, bytes, Optional[Fault], list, bytes]:
        """(status, body, content type, fault, events, decompressed body)"""
        plain = raw
        if headers.get("content-encoding") == "gzip":
            try:
                plain = gzip.decompress(raw)
            except (OSError, EOFError):
                return (*_json(400, error="Invalid JSON request body"),
                        b"application/json", None, [], raw)
        if path not in ("/2/httpapi", "/batch", "/identify"):
            return (*_json(400, error="Invalid request path"), b"application/json",
                    None, [], plain)
        if method != "POST":
            return (*_json(405, error="Method not allowed"), b"application/json",
                    None, [], plain)
        if path == "/identify":
            status, body = self._identify(plain)
            return status, body, b"application/json", None, [], plain
        status, body, request = self._parse(path, plain)
        events = request.get("events", []) if request else []
        if not isinstance(events, list):
            events = []
        with self._lock:
            fault = next((f for f in self.faults if f.matches(path, events)), None)
        if fault is None:
            if status is None:
                status, body = self._ingest(path, request, len(raw), generation)
            return status, body, b"application/json", None, events, plain
        if fault.kind in ("hang", "slow"):
            await _wait(release, fault.seconds)
        if status is not None:  # an invalid request stays invalid
            return status, body, b"application/json", fault, events, plain
        if fault.kind == "slow":
            status, body = self._ingest(path, request, len(raw), generation)
            return status, body, b"application/json", fault, events, plain
        if fault.ingest:
            self._ingest(path, request, len(raw), generation)
        if fault.kind == "hang":
            status, body = (200, self._ok(len(events), len(plain))) if fault.ingest else (
                _json(503, error="Service Unavailable")
            )
            return status, body, b"application/json", fault, events, plain
        if fault.kind == "body":
            return fault.status, fault.body or b"", fault.content_type, fault, events, plain
        if fault.kind == "reset":
            return 0, b"", b"", fault, events, plain
        status, body = _json(fault.status, error=_ERRORS.get(fault.status, "error"))
        return status, body, b"application/json", fault, events, plain

    def _parse(self, path: str, plain: bytes) -> tuple[Optional[int], bytes, dict]:
        """The request-level checks, in Amplitude's order (§4.2)."""
        if not plain:
            return (*_json(400, error="Missing request body"), {})
        try:
            request = _decode(plain)
        except msgspec.DecodeError:
            return (*_json(400, error="Invalid JSON request body"), {})
        if not isinstance(request, dict):
            return (*_json(400, error="Invalid JSON request body"), {})
        if "api_key" not in request:
            return (*_json(400, error="Request missing required field",
                           missing_field="api_key"), request)
        if not isinstance(request.get("events"), list):
            return (*_json(400, error="Request missing required field",
                           missing_field="events"), request)
        if request["api_key"] not in self.api_keys:
            return (*_json(400, error=f"Invalid API key: {request['api_key']}"), request)
        limits = self.limits[path]
        if len(request["events"]) > limits.max_events or len(plain) > limits.max_bytes:
            return (*_json(413, error="Payload too large"), request)
        return None, b"", request

    def _ok(self, ingested: int, size: int) -> bytes:
        return _encode({
            "code": 200, "events_ingested": ingested, "payload_size_bytes": size,
            "server_upload_time": int(time.time() * 1000),
        })

    def _ingest(
        self, path: str, request: dict, size: int, generation: int
    ) -> tuple[int, bytes]:
        """Per-event validation, silencing, throttling, then the store."""
        with self._lock:
            if generation != self._generation:
                return _json(503, error="reset while the request was held")
            return self._ingest_locked(path, request, size)

    def _ingest_locked(self, path: str, request: dict, size: int) -> tuple[int, bytes]:
        events = request["events"]
        options = request.get("options")
        min_length = self.min_id_length
        if isinstance(options, dict) and type(options.get("min_id_length")) is int:
            min_length = options["min_id_length"]
        failures: dict[str, dict[str, list[int]]] = {}
        kept_ids: list[tuple[Optional[str], Optional[str]]] = []

        def fail(kind: str, field: str, index: int) -> None:
            failures.setdefault(kind, {}).setdefault(field, []).append(index)

        for index, event in enumerate(events):
            if not isinstance(event, dict):
                fail("events_with_invalid_fields", "event", index)
                kept_ids.append((None, None))
                continue
            event_type = event.get("event_type")
            if not isinstance(event_type, str) or not event_type:
                fail("events_with_missing_fields", "event_type", index)
            elif event_type in self.reject_event_types:
                fail("events_with_invalid_fields", "event_type", index)
            ids = []
            short = None
            for field in ("user_id", "device_id"):
                value = event.get(field)
                if value is None:
                    ids.append(None)
                elif not isinstance(value, str) or value.lower() in INVALID_IDS:
                    ids.append(None)
                elif len(value) < min_length:
                    ids.append(None)
                    short = short or field
                else:
                    ids.append(value)
            kept_ids.append((ids[0], ids[1]))
            if ids == [None, None]:
                if short:
                    fail("events_with_invalid_id_lengths", short, index)
                else:
                    fail("events_with_missing_fields", "user_id_or_device_id", index)
            when = event.get("time")
            if when is not None and type(when) is not int:
                fail("events_with_invalid_fields", "time", index)
            for field in ("event_properties", "user_properties", "groups"):
                value = event.get(field)
                if value is None:
                    continue
                if not isinstance(value, dict) or _depth(value) > MAX_DEPTH:
                    fail("events_with_invalid_fields", field, index)
        if failures:
            return self._invalid(failures)
        silenced = [
            i for i, (_, device) in enumerate(kept_ids) if device in self.silenced_devices
        ]
        if silenced:
            return _json(400, error="Events silenced for device_id",
                         silenced_devices=sorted({kept_ids[i][1] for i in silenced}),
                         silenced_events=silenced, eps_threshold=self._threshold(path),
                         throttled_devices={}, throttled_events=[],
                         exceeded_daily_quota_devices={})
        throttled = self._throttled(path, kept_ids)
        if throttled is not None:
            return throttled
        now = self.now()
        stored = 0
        for event, (user_id, device_id) in zip(events, kept_ids):
            stored += self._store(request["api_key"], event, user_id, device_id, now)
        return 200, self._ok(stored, size)

    def _invalid(self, failures: dict[str, dict[str, list[int]]]) -> tuple[int, bytes]:
        if self.first_index_only:
            first = min(
                (i, kind, field) for kind, fields in failures.items()
                for field, indexes in fields.items() for i in indexes
            )
            failures = {first[1]: {first[2]: [first[0]]}}
        if "events_with_invalid_fields" in failures and "event" in failures[
            "events_with_invalid_fields"
        ]:
            error = "Invalid event JSON"
        elif set(failures) == {"events_with_missing_fields"}:
            error = "Request missing required field"
        else:
            error = "Invalid field values on some events"
        return _json(400, error=error, **failures)

    def _threshold(self, path: str) -> Optional[float]:
        return self.limits[path].eps_threshold

    def _throttled(
        self, path: str, ids: list[tuple[Optional[str], Optional[str]]]
    ) -> Optional[tuple[int, bytes]]:
        threshold = self._threshold(path)
        if threshold is None and not self._scripted and self.daily_quota is None:
            return None
        now = self.now()
        counts: Counter = Counter()
        for user_id, device_id in ids:
            if user_id is not None:
                counts[("u", user_id)] += 1
            if device_id is not None:
                counts[("d", device_id)] += 1
        throttled: dict[tuple[str, str], float] = {}
        quota: dict[tuple[str, str], int] = {}
        for key, count in counts.items():
            window = self._windows.get(key)
            recent = 0
            if window is not None:
                while window and window[0] <= now - WINDOW:
                    window.popleft()
                recent = len(window)
            eps = (recent + count) / WINDOW
            if self.daily_quota is not None:
                day = self._daily.get(key)
                while day and day[0] <= now - DAY:
                    day.popleft()
                total = (len(day) if day else 0) + count
                if total > self.daily_quota:
                    quota[key] = total
                    continue
            if key in self._scripted:
                until = self._scripted[key]
                if until is None or until > now:
                    throttled[key] = eps
                    continue
                del self._scripted[key]
            if self._cooldown.get(key, -1.0) > now:
                throttled[key] = eps
            elif threshold is not None and eps > threshold:
                throttled[key] = eps
                self._cooldown[key] = now + self.throttle_cooldown
        if not throttled and not quota:
            return None
        named = throttled.keys() | quota.keys()
        events = [
            i for i, (user_id, device_id) in enumerate(ids)
            if ("u", user_id) in named or ("d", device_id) in named
        ]

        def of(table: dict, kind: str) -> dict:
            return {key[1]: value for key, value in table.items() if key[0] == kind}

        return _json(
            429, error="Too many requests for some devices and users",
            eps_threshold=threshold or 0, throttled_users=of(throttled, "u"),
            throttled_devices=of(throttled, "d"), throttled_events=events,
            exceeded_daily_quota_users=of(quota, "u"),
            exceeded_daily_quota_devices=of(quota, "d"),
        )

    def _store(self, api_key: str, event: dict, user_id: Optional[str],
               device_id: Optional[str], now: float) -> int:
        # Amplitude removes the ids it refuses and keeps the event.
        if event.get("user_id") is not None and user_id is None:
            event = {k: v for k, v in event.items() if k != "user_id"}
        if event.get("device_id") is not None and device_id is None:
            event = {k: v for k, v in event.items() if k != "device_id"}
        event, cut = _truncate(event)
        if cut:
            self.truncated.append((event.get("insert_id"), event.get("event_type")))
        for key in {("u", user_id), ("d", device_id)}:
            if key[1] is None:
                continue
            self._windows.setdefault(key, deque()).append(now)
            if self.daily_quota is not None:
                self._daily.setdefault(key, deque()).append(now)
        effective = device_id or "user:" + hashlib.sha1(str(user_id).encode()).hexdigest()
        insert_id = event.get("insert_id")
        if insert_id is None:
            self._unique += 1
            key: tuple = (api_key, effective, None, self._unique)
        else:
            key = (api_key, effective, insert_id)
            seen = self.store.get(key)
            if seen is not None and now - seen["__stored_at"] < self.dedup_window:
                self.duplicates += 1
                return 0
        self.store[key] = {"__stored_at": now}
        self.events.append(event)
        return 1

    def _identify(self, plain: bytes) -> tuple[int, bytes]:
        try:
            form = parse_qs(plain.decode("utf-8"), strict_parsing=False)
        except UnicodeDecodeError:
            return _json(400, error="Invalid request body")
        key = form.get("api_key", [None])[0]
        if key not in self.api_keys:
            return _json(400, error=f"Invalid API key: {key}")
        try:
            identification = _decode(form["identification"][0])
        except (KeyError, msgspec.DecodeError):
            return _json(400, error="missing_event", missing_event=True)
        items = identification if isinstance(identification, list) else [identification]
        if not items or not all(
            isinstance(i, dict) and (i.get("user_id") or i.get("device_id")) for i in items
        ):
            return _json(400, error="missing_event", missing_event=True)
        with self._lock:
            for item in items:
                self.identifications.append(item)
                self.identify_updates[item.get("user_id") or item.get("device_id")] += 1
        return 200, b"success"


_ERRORS = {
    403: "Forbidden", 413: "Payload too large", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


async def _respond(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _wait(release: threading.Event, seconds: float) -> None:
    # The test thread cannot wake an event of the server's loop: nap and look.
    deadline = time.monotonic() + min(seconds, MAX_WAIT)
    while not release.is_set() and time.monotonic() < deadline:
        await anyio.sleep(min(0.01, max(0.0, deadline - time.monotonic())))


@dataclasses.dataclass
class Server:
    """A running fake: its base URL (no trailing slash) and its app."""

    url: str
    app: FakeAmplitude
    port: int

    @property
    def http_v2(self) -> str:
        return self.url + "/2/httpapi"

    @property
    def batch(self) -> str:
        return self.url + "/batch"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (when this returns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _uvicorn(app: FakeAmplitude, sock: socket.socket) -> uvicorn.Server:
    config = uvicorn.Config(
        app, host=HOST, port=sock.getsockname()[1], log_level="critical",
        lifespan="off", loop="asyncio", http="h11", ws="none", access_log=False,
        timeout_graceful_shutdown=1, limit_concurrency=200, backlog=256,
        h11_max_incomplete_event_size=64 * 1024 * 1024,
    )
    return uvicorn.Server(config)


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: no Nagle wait between the head and the
    # body of an answer (40 ms per request on loopback otherwise).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, port))
    return sock


@contextmanager
def serve(app: FakeAmplitude, port: int = 0, start_timeout: float = 10.0) -> Iterator[Server]:
    """
    Runs ``app`` under uvicorn on 127.0.0.1 in a background thread until the
    block ends. ``port=0`` takes a free port.

    :raises RuntimeError: when the server does not start in ``start_timeout``.
    """
    sock = _bind(port)
    port = sock.getsockname()[1]
    server = _uvicorn(app, sock)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"fake-amplitude-{port}",
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake Amplitude did not start on port {port}")
            time.sleep(0.01)
        yield Server(f"http://{HOST}:{port}", app, port)
    finally:
        app.release()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-throttle", action="store_true",
                        help="no EPS limit (a load test sends many events per user)")
    parser.add_argument("--no-record", action="store_true",
                        help="keep counts and the dedup store, not request bodies")
    args = parser.parse_args(argv)
    app = FakeAmplitude(record=not args.no_record)
    if args.no_throttle:
        for limits in app.limits.values():
            limits.eps_threshold = None
    sock = _bind(args.port)
    server = _uvicorn(app, sock)
    print(f"listening on http://{HOST}:{sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
