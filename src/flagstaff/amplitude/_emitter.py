"""
The batched async Amplitude emitter.

Events are checked and serialized when they are enqueued (synchronously,
without I/O), then one background task gathers them into requests bounded
by count and bytes, and sends at most ``max_in_flight`` requests at a time.
Each answer is judged by :func:`._responses.judge`; every event ends with
one reported outcome. Everything runs on the event loop that entered the
emitter: its methods are not thread-safe.
"""

from __future__ import annotations

import functools
import gzip as _gzip
import heapq
import itertools
import logging
import math
import os
import random
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from time import monotonic, time as _wall, time_ns
from typing import Any, Optional, Union

import anyio
import anyio.abc
import anyio.lowlevel
import httpx
import msgspec

from .._version import __version__
from ._dedup import ExpiringLRU
from ._events import (
    EVENT_FIELDS,
    EXPERIMENT_EXPOSURE,
    EXPOSURE_EVENT,
    IDENTIFY_EVENT,
    INVALID_ID_SPELLINGS,
    INVALID_IDS,
    MAX_STRING,
    assignment_event,
    deterministic_insert_id,
    exposure_event,
    identify_operations,
    truncate_strings,
    variant_of,
)
from ._outcomes import DropReason, EmitterStats, Outcome
from ._responses import Action, Verdict, judge
from ._spool import Spool

__all__ = ("AmplitudeEmitter",)

logger = logging.getLogger("flagstaff.amplitude")

_encode = msgspec.json.Encoder().encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode

HOSTS = {"US": "https://api2.amplitude.com", "EU": "https://api.eu.amplitude.com"}
HTTP_V2_PATH = "/2/httpapi"
BATCH_PATH = "/batch"

#: Amplitude's request limits (amplitude.md §1.6): events, and bytes with a
#: safety margin under 1 MB (HTTP V2) and 20 MB (Batch)
MAX_REQUEST_EVENTS = 2000
HTTP_V2_BYTES = 900_000
BATCH_BYTES = 19_000_000

#: how long an id over its daily quota has its new events dropped here,
#: without asking Amplitude again (the quota is evaluated hourly)
QUOTA_MEMORY = 3600.0

#: spool writes wait for this much, then go out at once
_SPOOL_CHUNK = 256 * 1024

#: drops that a spool file can save
_SPOOLABLE = frozenset(
    {
        DropReason.EXHAUSTED,
        DropReason.OVERFLOW,
        DropReason.SHUTDOWN,
        DropReason.INVALID_API_KEY,
    }
)

# A queued event is a tuple, the cheapest thing to make per event:
# (JSON bytes, user_id, device_id, enqueued at (wall ms), flush epoch,
#  transient failures so far, 400 rounds survived)
_Record = tuple[bytes, Optional[str], Optional[str], int, int, int, int]
_RAW, _UID, _DID, _BORN, _EPOCH, _TRIES, _BOUNCES = range(7)

OutcomeCallback = Callable[[dict, Outcome, Optional[DropReason]], Any]


def redact(secret: str) -> str:
    """
    A key as log lines may show it: its last few characters.
    """
    return f"...{secret[-4:]}" if len(secret) > 12 else "***"


def endpoint(server_zone: str, use_batch: bool, server_url: Optional[str]) -> str:
    """
    The URL events are posted to: ``server_url`` when given (its path, when
    it has none, is the API's), else Amplitude's host for the zone.
    """
    path = BATCH_PATH if use_batch else HTTP_V2_PATH
    if server_url is not None:
        url = httpx.URL(server_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"server_url must be an http(s) URL, not {server_url!r}")
        return server_url.rstrip("/") + path if url.path in ("", "/") else server_url
    try:
        return HOSTS[server_zone.upper()] + path
    except (KeyError, AttributeError):
        message = f"server_zone must be 'US' or 'EU', not {server_zone!r}"
        raise ValueError(message) from None


class _Ids(Sequence):
    """(user_id, device_id) of a batch's events, without copying them."""

    __slots__ = ("_batch",)

    def __init__(self, batch: list[_Record]) -> None:
        self._batch = batch

    def __len__(self) -> int:
        return len(self._batch)

    def __getitem__(self, index):  # type: ignore[override]
        record = self._batch[index]
        return record[_UID], record[_DID]


class AmplitudeEmitter:
    """
    Sends exposure, assignment, identify and conversion events to Amplitude,
    in batches, from a background task; use it as an async context manager.

    :meth:`track`, :meth:`identify`, :meth:`exposure` and :meth:`assignment`
    never block and never raise on bad input or network trouble: they check
    and enqueue the event and return whether it was enqueued. Every event
    then ends in exactly one outcome, delivered, dropped (with a
    :class:`DropReason`) or spooled, reported to ``on_outcome`` and counted
    in :attr:`stats`.

    :param api_key: the Amplitude project's API key (not its secret key).
    :param server_zone: ``"US"`` (default) or ``"EU"`` (EU data residency).
    :param server_url: another endpoint (a proxy, a test server); a URL
        without a path gets the API's path.
    :param use_batch: send to the Batch Event Upload API (``/batch``: higher
        per-user limits, 20 MB requests) instead of HTTP V2.
    :param flush_at: send as soon as this many events wait.
    :param flush_interval: seconds an event waits at most for others to
        share its request.
    :param max_batch_events: events per request at most (≤ 2,000).
    :param max_batch_bytes: bytes of JSON per request at most (default: just
        under Amplitude's limit, 1 MB or 20 MB); larger single events are
        refused when enqueued.
    :param max_in_flight: requests under way at once.
    :param timeout: seconds per request.
    :param http_client: an ``httpx.AsyncClient`` to send with; the caller
        closes it. By default the emitter makes and closes its own.
    :param gzip: compress request bodies (limits apply to the uncompressed
        JSON).
    :param min_id_length: Amplitude's minimum length of ``user_id`` and
        ``device_id`` (5 when not given; sent to Amplitude only when given).
    :param max_queue: events waiting or in flight at most.
    :param max_queue_bytes: their serialized bytes at most.
    :param overflow: what goes when the queue is full: ``"drop_new"`` (the
        event being enqueued; default) or ``"drop_oldest"`` (the oldest
        waiting one). With a spool file the victim is spooled instead.
    :param max_retries: sends after the first that a 5xx, a timeout or a
        network error may cost an event.
    :param max_age: seconds after which such an event is not retried again.
    :param backoff: seconds before the first retry; it doubles per failure
        in a row (with jitter) up to ``max_backoff``.
    :param max_backoff: the longest wait between retries.
    :param throttle_hold: seconds a throttled user's or device's events are
        held back after a 429 (default: 30 for HTTP V2, 15 for Batch).
    :param spool: a file for what cannot be delivered: events still pending
        at the :meth:`aclose` deadline, events whose retries ran out while
        Amplitude was unreachable, overflow, and events refused for an
        invalid API key. Its events are sent when the next emitter opens
        (or this one sees Amplitude answer again). One file per process.
    :param spool_max_bytes: the spool file's size at most.
    :param spool_max_age: seconds after an event's time that the spool still
        sends it (Amplitude keeps insert ids for 7 days).
    :param exposure_event: ``"$exposure"`` (default; Amplitude turns it into
        ``[Experiment] Exposure`` on ingest) or ``"[Experiment] Exposure"``
        (Amplitude Experiment's shape, with ``$set`` of the user property).
    :param skip_defaults: make no exposure or assignment for an evaluation
        that served the default value or had an error.
    :param dedup_capacity: users x flags x variants remembered for dedup.
    :param dedup_ttl: seconds an exposure (or assignment, or identify) is
        not sent again; also the insert id's time bucket.
    :param dedup_identifies: skip an identify that repeats the user's last
        one within ``dedup_ttl`` (user property updates are limited to 1,800
        per hour per user).
    :param device_id_attribute: a custom attribute of the evaluated user to
        send as ``device_id`` (default: none).
    :param close_deadline: seconds ``async with`` gives :meth:`aclose`.
    :param on_outcome: called as ``on_outcome(event, outcome, reason)`` for
        every event's final outcome: the event as a dict, an
        :class:`Outcome`, and a :class:`DropReason` for a drop (else None).
        It runs on the event loop; exceptions are logged.
    """

    def __init__(
        self,
        api_key: str,
        *,
        server_zone: str = "US",
        server_url: Optional[str] = None,
        use_batch: bool = False,
        flush_at: int = 200,
        flush_interval: float = 10.0,
        max_batch_events: int = 1000,
        max_batch_bytes: Optional[int] = None,
        max_in_flight: int = 4,
        timeout: float = 10.0,
        http_client: Optional[httpx.AsyncClient] = None,
        gzip: bool = False,
        min_id_length: Optional[int] = None,
        max_queue: int = 100_000,
        max_queue_bytes: int = 64 * 1024 * 1024,
        overflow: str = "drop_new",
        max_retries: int = 12,
        max_age: float = 600.0,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        throttle_hold: Optional[float] = None,
        spool: Union[str, os.PathLike[str], None] = None,
        spool_max_bytes: int = 64 * 1024 * 1024,
        spool_max_age: float = 7 * 86_400.0,
        exposure_event: str = EXPOSURE_EVENT,
        skip_defaults: bool = True,
        dedup_capacity: int = 65_536,
        dedup_ttl: float = 86_400.0,
        dedup_identifies: bool = True,
        device_id_attribute: Optional[str] = None,
        close_deadline: float = 10.0,
        on_outcome: Optional[OutcomeCallback] = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("an Amplitude API key is required")
        if not 1 <= max_batch_events <= MAX_REQUEST_EVENTS:
            raise ValueError(f"max_batch_events must be 1..{MAX_REQUEST_EVENTS}")
        if not 1 <= flush_at <= max_batch_events:
            raise ValueError("flush_at must be 1..max_batch_events")
        if overflow not in ("drop_new", "drop_oldest"):
            raise ValueError("overflow must be 'drop_new' or 'drop_oldest'")
        if exposure_event not in (EXPOSURE_EVENT, EXPERIMENT_EXPOSURE):
            raise ValueError(
                f"exposure_event must be {EXPOSURE_EVENT!r} or {EXPERIMENT_EXPOSURE!r}"
            )
        if max_in_flight < 1 or max_queue < 1 or flush_interval <= 0 or timeout <= 0:
            raise ValueError(
                "max_in_flight, max_queue, flush_interval and timeout must be > 0"
            )
        self._api_key = api_key
        self.url = endpoint(server_zone, use_batch, server_url)
        self._flush_at = flush_at
        self._flush_interval = flush_interval
        self._max_batch_events = max_batch_events
        limit = BATCH_BYTES if use_batch else HTTP_V2_BYTES
        self._max_batch_bytes = max_batch_bytes or limit
        self._max_in_flight = max_in_flight
        self._timeout = timeout
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_in_flight, max_keepalive_connections=max_in_flight
            ),
        )
        self._gzip = gzip
        self._min_id = 5 if min_id_length is None else min_id_length
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        self._drop_oldest = overflow == "drop_oldest"
        self._max_retries = max_retries
        self._max_age_ms = int(max_age * 1000)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._throttle_hold = throttle_hold if throttle_hold is not None else (
            15.0 if use_batch else 30.0
        )
        self._spool = Spool(spool, spool_max_bytes) if spool is not None else None
        self._spool_max_age_ms = int(spool_max_age * 1000)
        self._exposure_event = exposure_event
        self._skip_defaults = skip_defaults
        self._dedup_ttl = dedup_ttl
        self._exposures = ExpiringLRU(dedup_capacity, dedup_ttl)
        self._assignments = ExpiringLRU(dedup_capacity, dedup_ttl)
        self._identifies = (
            ExpiringLRU(dedup_capacity, dedup_ttl) if dedup_identifies else None
        )
        self._device_attribute = device_id_attribute
        self._close_deadline = close_deadline
        self._on_outcome = on_outcome
        #: seconds since the epoch; tests move it to expire dedup entries
        self._clock: Callable[[], float] = _wall

        options = b""
        if min_id_length is not None:
            options = b',"options":{"min_id_length":%d}' % min_id_length
        self._head = b'{"api_key":' + _encode(api_key) + b',"events":['
        self._tail = b"]" + options + b"}"
        self._envelope = len(self._head) + len(self._tail)
        self._event_limit = self._max_batch_bytes - self._envelope
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "*/*",
            "User-Agent": f"flagstaff/{__version__}",
        }
        if gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._library = f"flagstaff/{__version__}"
        self._id_prefix = secrets.token_hex(12) + "-"
        self._ids_made = itertools.count(1)

        # the queue: ready now, and (due, seq, records) for later
        self._ready: deque[_Record] = deque()
        self._delayed: list[tuple[float, int, list[_Record]]] = []
        self._seq = itertools.count()
        self._in_flight: dict[int, list[_Record]] = {}
        self._batch_ids = itertools.count()
        self._queued_n = 0
        self._queued_b = 0
        self._first_at = 0          # wall ms when the oldest ready event came
        self._urgent = False        # retries or resends wait in `_ready`
        self._count_limit = max_batch_events
        self._byte_limit = self._max_batch_bytes
        self._streak = 0            # deliveries in a row, to grow the limits back
        self._failures = 0          # transient failures in a row
        self._pause_until = 0.0     # monotonic: no new request before
        self._held: dict[tuple[str, str], float] = {}   # throttled id -> until
        self._quota: dict[tuple[str, str], float] = {}  # over quota -> until
        self._requests_n = 0
        self._inflight_requests = 0
        self._spool_buffer: list[_Record] = []
        self._spool_buffer_bytes = 0
        self._spool_dirty = False
        self._reloading = False
        self._last_reload = -math.inf

        # flush(): events are counted per epoch; flush() starts a new one
        # and waits until the older ones have no pending event left
        self._epoch = 0
        self._open_now = 0
        self._open_old: dict[int, int] = {}
        self._flushes: list[tuple[int, anyio.Event]] = []

        # counters
        self._submitted = 0
        self._delivered = 0
        self._dropped = 0
        self._spooled = 0
        self._by_reason: dict[str, int] = {}
        self._overflowed = 0
        self._loaded = 0
        self._retried = 0
        self._throttled = 0
        self._split = 0
        self._exposures_dedup = 0
        self._exposures_skipped = 0
        self._assignments_dedup = 0
        self._identifies_dedup = 0
        self._warned: dict[str, tuple[float, int]] = {}

        # made by the sender task: an event needs a running event loop
        self._wake: Optional[anyio.Event] = None
        self._woken = False
        self._task_group: Optional[anyio.abc.TaskGroup] = None
        self._scopes: set[anyio.CancelScope] = set()
        self._running = False
        self._closed = False
        self._fatal: Optional[str] = None
        self._refusing = False      # closed, or stopped for the API key

    def __repr__(self) -> str:
        return f"AmplitudeEmitter(api_key={redact(self._api_key)!r}, url={self.url!r})"

    # -- the public face ------------------------------------------------------

    @property
    def error(self) -> Optional[str]:
        """
        Why the emitter stopped sending (Amplitude rejected the API key), or
        None while it sends.
        """
        return self._fatal

    @property
    def stats(self) -> EmitterStats:
        """
        A snapshot of the counters.
        """
        delayed = sum(len(records) for _, _, records in self._delayed)
        return EmitterStats(
            submitted=self._submitted,
            delivered=self._delivered,
            dropped=self._dropped,
            spooled=self._spooled,
            queued=len(self._ready) + delayed,
            in_flight=sum(len(batch) for batch in self._in_flight.values()),
            spool_pending=len(self._spool_buffer),
            queued_bytes=self._queued_b,
            dropped_by_reason=dict(self._by_reason),
            overflowed=self._overflowed,
            loaded_from_spool=self._loaded,
            requests=self._requests_n,
            retried=self._retried,
            throttled=self._throttled,
            split=self._split,
            exposures_deduplicated=self._exposures_dedup,
            exposures_skipped=self._exposures_skipped,
            assignments_deduplicated=self._assignments_dedup,
            identifies_deduplicated=self._identifies_dedup,
            error=self._fatal,
        )

    def track(
        self,
        event_type: str,
        *,
        user_id: Optional[str] = None,
        device_id: Optional[str] = None,
        user: Any = None,
        event_properties: Optional[Mapping[str, Any]] = None,
        user_properties: Optional[Mapping[str, Any]] = None,
        groups: Optional[Mapping[str, Any]] = None,
        time: Union[int, datetime, None] = None,
        insert_id: Optional[str] = None,
        **fields: Any,
    ) -> bool:
        """
        Enqueues an event, such as a conversion (``"Subscribed to Premium"``).

        Send it with the same ids as the user's exposures: pass the
        evaluated ``user`` (its identifier becomes ``user_id``) or the ids.
        Property values may be any JSON value, datetimes (sent as ISO 8601
        text), sets, decimals and UUIDs; strings are cut to 1,024 characters.

        :param event_type: the event's name.
        :param user: an evaluated user (anything with ``identifier`` and
            ``custom``), instead of ``user_id``.
        :param time: when it happened: ms since the epoch or a datetime
            (default: now).
        :param insert_id: Amplitude's dedup key (default: a unique id).
        :param fields: other top-level Amplitude event fields
            (``app_version``, ``platform``, ``revenue``, ``session_id``...).
        :return: True when the event was enqueued; False when it was refused
            (its outcome says why).
        """
        if user is not None:
            user_id, device_id = self._ids_of(user, user_id, device_id)
        event: dict[str, Any] = {"event_type": event_type}
        invalid = DropReason.INVALID_EVENT
        if event_properties is not None:
            event["event_properties"] = event_properties
            if type(event_properties) is not dict and not isinstance(
                event_properties, Mapping
            ):
                return self._refuse(event, invalid, "event_properties: not a mapping")
        if user_properties is not None:
            event["user_properties"] = user_properties
            if not isinstance(user_properties, Mapping):
                return self._refuse(event, invalid, "user_properties: not a mapping")
        if groups is not None:
            event["groups"] = groups
            if not isinstance(groups, Mapping):
                return self._refuse(event, invalid, "groups: not a mapping")
        if fields:
            unknown = fields.keys() - EVENT_FIELDS
            if unknown:
                return self._refuse(
                    event, DropReason.INVALID_EVENT, f"unknown fields {sorted(unknown)}"
                )
            event.update(fields)
        return self._enqueue(event, user_id, device_id, time, insert_id)

    def identify(
        self,
        user_id: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        *,
        device_id: Optional[str] = None,
        user: Any = None,
        set_once: Optional[Mapping[str, Any]] = None,
        add: Optional[Mapping[str, Any]] = None,
        append: Optional[Mapping[str, Any]] = None,
        unset: Optional[Iterable[str]] = None,
        time: Union[int, datetime, None] = None,
    ) -> bool:
        """
        Enqueues an ``$identify`` that sets the user's properties
        (``properties`` under ``$set``; the other operations under theirs).

        An identify that repeats the user's previous one within the dedup
        window is not sent (unless ``dedup_identifies=False``).

        :return: True when enqueued; False when refused or a repeat.
        """
        if user is not None:
            user_id, device_id = self._ids_of(user, user_id, device_id)
        operations = {"set_once": set_once, "add": add, "append": append}
        try:
            user_properties = identify_operations(properties, operations, unset)
        except (TypeError, ValueError) as exc:
            event = {"event_type": IDENTIFY_EVENT, "user_id": user_id}
            return self._refuse(event, DropReason.INVALID_EVENT, str(exc))
        event = {"event_type": IDENTIFY_EVENT, "user_properties": user_properties}
        if self._identifies is not None:
            try:
                digest = _encode_sorted(user_properties)
            except (TypeError, ValueError, OverflowError):
                digest = None  # refused below, with the reason
            if digest is not None and not self._identifies.changed(
                (user_id, device_id), digest, self._clock()
            ):
                self._identifies_dedup += 1
                return False
        return self._enqueue(event, user_id, device_id, time, None)

    def exposure(
        self,
        details: Any,
        *,
        user_id: Optional[str] = None,
        device_id: Optional[str] = None,
        experiment_key: Optional[str] = None,
    ) -> bool:
        """
        Enqueues the exposure of one evaluation (an
        :class:`~flagstaff.EvaluationDetails`, or anything with its
        ``key``, ``value``, ``variation_id``, ``is_default_value``,
        ``error`` and ``user``), at most once per user, device, flag and
        variant within the dedup window.

        Skipped (False, counted in ``exposures_skipped``): an evaluation
        without a user, and unless ``skip_defaults=False`` one that served
        the default value or had an error. The insert id is the same in
        every process for the same exposure in the same dedup window, so
        Amplitude counts it once.

        :param user_id: instead of the evaluated user's identifier.
        :param experiment_key: tells apart runs of an experiment on one flag.
        :return: True when an exposure was enqueued.
        """
        try:
            if self._skip_defaults and (
                details.is_default_value or details.error is not None
            ):
                self._exposures_skipped += 1
                return False
            evaluated = details.user
            if evaluated is not None:
                user_id, device_id = self._ids_of(evaluated, user_id, device_id)
            flag_key = details.key
            variation_id = details.variation_id
            variant = variant_of(details.value, variation_id)
        except Exception:
            self._exposures_skipped += 1
            logger.warning(
                "exposure() needs an evaluation, not %r", type(details), exc_info=True
            )
            return False
        if user_id is None and device_id is None:
            self._exposures_skipped += 1
            return False
        now = self._clock()
        if not self._exposures.admit((user_id, device_id, flag_key, variant), now):
            self._exposures_dedup += 1
            return False
        event_type = self._exposure_event
        event = exposure_event(
            flag_key, variant, variation_id, experiment_key, event_type
        )
        canonical = (
            f"{event_type} {user_id} {device_id} {flag_key} {variant} {experiment_key}"
        )
        insert_id = deterministic_insert_id("x", canonical, int(now // self._dedup_ttl))
        return self._enqueue(event, user_id, device_id, int(now * 1000), insert_id)

    def assignment(
        self,
        evaluations: Iterable[Any],
        *,
        user_id: Optional[str] = None,
        device_id: Optional[str] = None,
    ) -> bool:
        """
        Enqueues one ``[Experiment] Assignment`` for the evaluations of one
        user (say, all flags of ``get_all_values``), at most once per user
        and distinct result within the dedup window.

        Evaluations that served the default value or had an error are left
        out unless ``skip_defaults=False``.

        :return: True when an assignment was enqueued.
        """
        variants: dict[str, str] = {}
        try:
            for details in evaluations:
                if self._skip_defaults and (
                    details.is_default_value or details.error is not None
                ):
                    continue
                variant = variant_of(details.value, details.variation_id)
                if variant is None:
                    continue
                variants[details.key] = variant
                if details.user is not None:
                    user_id, device_id = self._ids_of(details.user, user_id, device_id)
        except Exception:
            self._exposures_skipped += 1
            logger.warning("assignment() needs evaluations", exc_info=True)
            return False
        if not variants or (user_id is None and device_id is None):
            self._exposures_skipped += 1
            return False
        ordered = dict(sorted(variants.items()))
        canonical = f"{user_id} {device_id} " + "".join(
            f"{key} {variant} " for key, variant in ordered.items()
        )
        now = self._clock()
        if not self._assignments.admit(canonical, now):
            self._assignments_dedup += 1
            return False
        insert_id = deterministic_insert_id("a", canonical, int(now // self._dedup_ttl))
        event = assignment_event(ordered)
        return self._enqueue(event, user_id, device_id, int(now * 1000), insert_id)

    async def flush(self) -> None:
        """
        Waits until every event enqueued before the call has its final
        outcome: delivered, dropped or spooled (retries and held-back
        events included, so this may take as long as Amplitude makes it;
        bound it with :func:`anyio.fail_after`). Sends what waits at once.

        Cancelling is safe: the events stay queued.

        :raises RuntimeError: when the emitter is not open (``async with``).
        """
        if self._closed:
            return
        if not self._running:
            raise RuntimeError("the emitter sends only inside 'async with'")
        await self._drain()

    async def aclose(self, deadline: Optional[float] = None) -> EmitterStats:
        """
        Stops taking events, sends what is pending for at most ``deadline``
        seconds, then writes what is still undelivered to the spool file
        (or drops it as :attr:`DropReason.SHUTDOWN`) and closes the HTTP
        client it made. Returns the final counters; logs a warning when
        anything was left undelivered. Safe to call twice.

        :param deadline: seconds (default: ``close_deadline``). Cancelling
            the call ends the wait at once; the leftovers are still spooled
            or reported.
        """
        if self._closed:
            return self.stats
        self._closed = True
        self._refusing = True
        deadline = self._close_deadline if deadline is None else deadline
        started = monotonic()
        try:
            if self._running and self._fatal is None:
                # Keep a little of the deadline for the spool file.
                reserve = min(0.25, deadline / 10)
                with anyio.move_on_after(max(0.0, deadline - reserve)):
                    await self._drain()
        finally:
            self._running = False
            for scope in list(self._scopes):
                scope.cancel()
            leftovers = self._take_everything()
            left = max(0.5, deadline - (monotonic() - started))
            with anyio.move_on_after(left, shield=True):
                await self._abandon(leftovers)
                if self._own_http:
                    await self._http.aclose()
        stats = self.stats
        level = logging.WARNING if leftovers else logging.DEBUG
        logger.log(
            level,
            "Amplitude emitter closed, %d events still pending at its deadline "
            "(%s); in all %d delivered, %d spooled, %d dropped %s",
            len(leftovers), "spooled" if self._spool is not None else "dropped",
            stats.delivered, stats.spooled, stats.dropped, stats.dropped_by_reason,
        )
        return stats

    async def __aenter__(self) -> "AmplitudeEmitter":
        if self._closed or self._task_group is not None:
            raise RuntimeError("an emitter is opened once")
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._running = True
        if self._spool is not None:
            await self._load_spool()
        self._spawn(self._run)
        return self

    async def __aexit__(self, *exc_info: Any) -> Optional[bool]:
        try:
            await self.aclose()
        finally:
            assert self._task_group is not None
            result = await self._task_group.__aexit__(*exc_info)
        return result

    # -- enqueueing -------------------------------------------------------------

    def _ids_of(
        self, user: Any, user_id: Optional[str], device_id: Optional[str]
    ) -> tuple[Optional[str], Optional[str]]:
        if user_id is None:
            user_id = getattr(user, "identifier", None)
        if device_id is None and self._device_attribute is not None:
            custom = getattr(user, "custom", None) or {}
            value = custom.get(self._device_attribute)
            device_id = value if value is None or type(value) is str else str(value)
        return user_id, device_id

    def _usable_id(self, value: Any) -> Optional[str]:
        if type(value) is not str:
            if value is None or type(value) is not int:
                return None
            value = str(value)
        if len(value) < self._min_id or value.lower() in INVALID_IDS:
            return None
        return value

    def _enqueue(
        self,
        event: dict[str, Any],
        user_id: Any,
        device_id: Any,
        when: Union[int, datetime, None],
        insert_id: Optional[str],
    ) -> bool:
        event_type = event["event_type"]
        if type(event_type) is not str or not event_type:
            return self._refuse(event, DropReason.INVALID_EVENT, "event_type: not text")
        invalid = INVALID_ID_SPELLINGS
        if user_id is not None:
            if (
                type(user_id) is not str
                or len(user_id) < self._min_id
                or user_id in invalid
            ):
                user_id = self._usable_id(user_id)
            if user_id is not None:
                event["user_id"] = user_id
        if device_id is not None:
            if (
                type(device_id) is not str
                or len(device_id) < self._min_id
                or device_id in invalid
            ):
                device_id = self._usable_id(device_id)
            if device_id is not None:
                event["device_id"] = device_id
        if user_id is None and device_id is None:
            reason = DropReason.INVALID_ID
            return self._refuse(event, reason, "no usable user_id or device_id")
        now_ms = time_ns() // 1_000_000
        if when is None:
            event["time"] = now_ms
        elif type(when) is int:
            event["time"] = when
        elif isinstance(when, datetime):
            event["time"] = int(when.timestamp() * 1000)
        else:
            reason = DropReason.INVALID_EVENT
            return self._refuse(event, reason, "time: not ms or a datetime")
        if insert_id is None:
            insert_id = f"{self._id_prefix}{next(self._ids_made)}"
        elif type(insert_id) is not str or not insert_id:
            return self._refuse(event, DropReason.INVALID_EVENT, "insert_id: not text")
        event["insert_id"] = insert_id
        event["library"] = self._library
        try:
            raw = _encode(event)
            if len(raw) > MAX_STRING:
                # Only an event this long can hold a string Amplitude would
                # cut: cut it here, so the event sent is the event stored.
                raw = _encode(truncate_strings(event))
        except (TypeError, ValueError, OverflowError) as exc:
            return self._refuse(event, DropReason.INVALID_EVENT, str(exc))
        size = len(raw)
        if size > self._event_limit:
            return self._refuse(event, DropReason.TOO_LARGE, f"{size} bytes")
        record = (raw, user_id, device_id, now_ms, self._epoch, 0, 0)
        self._submitted += 1
        self._open_now += 1
        if self._refusing:
            reason = DropReason.CLOSED if self._closed else DropReason.INVALID_API_KEY
            self._lose([record], reason)
            return False
        if (
            self._queued_n >= self._max_queue
            or self._queued_b + size > self._max_queue_bytes
        ):
            if not self._make_room(size):
                self._overflowed += 1
                self._lose([record], DropReason.OVERFLOW)
                return False
        ready = self._ready
        if not ready:
            self._first_at = now_ms
            if not self._woken:
                self._notify()
        ready.append(record)
        self._queued_n += 1
        self._queued_b += size
        if len(ready) >= self._flush_at and not self._woken:
            self._notify()
        return True

    def _refuse(self, event: dict[str, Any], reason: DropReason, detail: str) -> bool:
        """Drops an event that never entered the queue."""
        self._submitted += 1
        self._count_drop(reason, 1)
        self._warn(reason, 1, detail)
        if self._on_outcome is not None:
            self._call_back(event, Outcome.DROPPED, reason)
        return False

    def _make_room(self, size: int) -> bool:
        """The overflow policy: True when the new event may go in."""
        if not self._drop_oldest:
            return False
        ready = self._ready
        victims = []
        while ready and (
            self._queued_n >= self._max_queue
            or self._queued_b + size > self._max_queue_bytes
        ):
            victim = ready.popleft()
            self._queued_n -= 1
            self._queued_b -= len(victim[_RAW])
            victims.append(victim)
        if victims:
            self._overflowed += len(victims)
            self._lose(victims, DropReason.OVERFLOW)
        return self._queued_n < self._max_queue and (
            self._queued_b + size <= self._max_queue_bytes
        )

    # -- outcomes ---------------------------------------------------------------

    def _unqueue(self, records: list[_Record]) -> None:
        self._queued_n -= len(records)
        self._queued_b -= sum(len(record[_RAW]) for record in records)

    def _settle(
        self,
        records: list[_Record],
        outcome: Outcome,
        reason: Optional[DropReason] = None,
    ) -> None:
        """The final outcome of events that were counted as pending."""
        epoch = self._epoch
        old = self._open_old
        touched_old = False
        for record in records:
            record_epoch = record[_EPOCH]
            if record_epoch == epoch:
                self._open_now -= 1
            else:
                old[record_epoch] -= 1
                touched_old = True
        count = len(records)
        if outcome is Outcome.DELIVERED:
            self._delivered += count
        elif outcome is Outcome.SPOOLED:
            self._spooled += count
        else:
            assert reason is not None
            self._count_drop(reason, count)
        if self._on_outcome is not None:
            for record in records:
                self._call_back(_decode(record[_RAW]), outcome, reason)
        if touched_old and self._flushes:
            self._check_flushes()

    def _count_drop(self, reason: DropReason, count: int) -> None:
        self._dropped += count
        self._by_reason[reason.value] = self._by_reason.get(reason.value, 0) + count

    def _call_back(
        self, event: dict[str, Any], outcome: Outcome, reason: Optional[DropReason]
    ) -> None:
        try:
            assert self._on_outcome is not None
            self._on_outcome(event, outcome, reason)
        except Exception:
            logger.warning(
                "on_outcome raised for a %s event", outcome.value, exc_info=True
            )

    def _lose(self, records: list[_Record], reason: DropReason) -> None:
        """Events that will not be delivered here: to the spool, or dropped."""
        if not records:
            return
        if self._spool is not None and reason in _SPOOLABLE:
            self._spool_buffer.extend(records)
            self._spool_buffer_bytes += sum(len(record[_RAW]) + 1 for record in records)
            if self._spool_buffer_bytes >= _SPOOL_CHUNK or not self._running:
                self._write_spool()
            else:
                self._notify()
            return
        self._settle(records, Outcome.DROPPED, reason)
        self._warn(reason, len(records), "")

    def _warn(self, reason: DropReason, count: int, detail: str) -> None:
        """A WARNING per drop reason at most every 10 s, with the count."""
        now = monotonic()
        last, pending = self._warned.get(reason.value, (-math.inf, 0))
        pending += count
        if now - last < 10.0:
            self._warned[reason.value] = (last, pending)
            return
        self._warned[reason.value] = (now, 0)
        logger.warning(
            "Amplitude emitter dropped %d events (%s)%s",
            pending, reason.value, f": {detail}" if detail else "",
        )

    def _check_flushes(self) -> None:
        old = self._open_old
        for epoch in [epoch for epoch, count in old.items() if count == 0]:
            del old[epoch]
        lowest = min(old, default=self._epoch)
        for waiter in [waiter for waiter in self._flushes if waiter[0] < lowest]:
            self._flushes.remove(waiter)
            waiter[1].set()

    async def _drain(self) -> None:
        """Waits until every event enqueued so far has its outcome."""
        if self._open_now == 0 and not any(self._open_old.values()):
            return
        target = self._epoch
        self._open_old[target] = self._open_now
        self._open_now = 0
        self._epoch += 1
        waiter = (target, anyio.Event())
        self._flushes.append(waiter)
        self._check_flushes()
        self._notify()
        try:
            await waiter[1].wait()
        finally:
            if waiter in self._flushes:
                self._flushes.remove(waiter)

    # -- the sender -------------------------------------------------------------

    def _notify(self) -> None:
        self._woken = True
        if self._wake is not None:
            self._wake.set()

    def _spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        # The scope exists before the task runs, so that aclose() can cancel
        # a task that has not started yet.
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        assert self._task_group is not None
        self._task_group.start_soon(self._background, scope, work)

    async def _background(
        self, scope: anyio.CancelScope, work: Callable[[], Awaitable[None]]
    ) -> None:
        with scope:
            try:
                await work()
            except Exception:
                logger.exception("an Amplitude emitter task died")
            finally:
                self._scopes.discard(scope)

    async def _run(self) -> None:
        while True:
            wait = self._plan()
            if wait == 0.0:
                batch, nbytes = self._take_batch()
                if batch:
                    batch_id = self._register(batch)
                    self._spawn(functools.partial(self._send, batch_id, batch, nbytes))
                await anyio.lowlevel.checkpoint()
                continue
            if self._spool_buffer:
                await self._write_spool_async()
                continue
            self._woken = False
            wake = self._wake = anyio.Event()
            if wait == math.inf:
                await wake.wait()
            else:
                with anyio.move_on_after(wait):
                    await wake.wait()

    def _plan(self) -> float:
        """Seconds until a request should go; 0.0 for now."""
        now = monotonic()
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, records = heapq.heappop(delayed)
            self._ready.extendleft(reversed(records))
            self._urgent = True
        if self._fatal is not None or not self._running:
            return math.inf
        slots = 1 if self._failures else self._max_in_flight
        if self._inflight_requests >= slots:
            return math.inf
        if now < self._pause_until:
            return self._pause_until - now
        wait = math.inf
        ready = self._ready
        if ready:
            if len(ready) >= self._flush_at or self._urgent or self._flushes:
                return 0.0
            if self._closed:
                return 0.0
            wait = (self._first_at / 1000 + self._flush_interval) - _wall()
            if wait <= 0:
                return 0.0
        if delayed:
            wait = min(wait, delayed[0][0] - now)
        return max(wait, 0.001)

    def _take_batch(self) -> tuple[list[_Record], int]:
        ready = self._ready
        limit_n = self._count_limit
        limit_b = self._byte_limit - self._envelope
        divert = bool(self._held or self._quota)
        now = monotonic()
        batch: list[_Record] = []
        nbytes = 0
        while ready and len(batch) < limit_n:
            record = ready[0]
            size = len(record[_RAW]) + 1
            if batch and nbytes + size > limit_b:
                break
            ready.popleft()
            if divert and self._diverted(record, now):
                continue
            batch.append(record)
            nbytes += size
        if not ready:
            self._urgent = False
        return batch, nbytes

    def _diverted(self, record: _Record, now: float) -> bool:
        """Holds or drops an event of a throttled or over-quota id."""
        keys = (("u", record[_UID]), ("d", record[_DID]))
        for key in keys:
            until = self._quota.get(key)
            if until is not None:
                if until > now:
                    self._unqueue([record])
                    self._settle([record], Outcome.DROPPED, DropReason.DAILY_QUOTA)
                    self._warn(DropReason.DAILY_QUOTA, 1, "")
                    return True
                del self._quota[key]
        for key in keys:
            until = self._held.get(key)
            if until is not None:
                if until > now:
                    self._schedule([record], until)
                    return True
                del self._held[key]
        return False

    def _schedule(self, records: list[_Record], due: float) -> None:
        heapq.heappush(self._delayed, (due, next(self._seq), records))

    def _requeue_now(self, records: list[_Record]) -> None:
        self._ready.extendleft(reversed(records))
        self._urgent = True
        self._notify()

    def _register(self, batch: list[_Record]) -> int:
        batch_id = next(self._batch_ids)
        self._in_flight[batch_id] = batch
        self._inflight_requests += 1
        self._requests_n += 1
        return batch_id

    def _body(self, batch: list[_Record]) -> bytes:
        body = self._head + b",".join([record[_RAW] for record in batch]) + self._tail
        return _gzip.compress(body, compresslevel=5) if self._gzip else body

    async def _send(self, batch_id: int, batch: list[_Record], nbytes: int) -> None:
        status: Optional[int] = None
        content = b""
        failure = ""
        started = monotonic()
        try:
            response = await self._http.post(
                self.url, content=self._body(batch), headers=self._headers,
                timeout=self._timeout,
            )
            status, content = response.status_code, response.content
        except (httpx.HTTPError, OSError) as exc:
            failure = type(exc).__name__
        except Exception as exc:  # a bug below us must not lose the events
            failure = type(exc).__name__
            logger.warning("sending to Amplitude raised", exc_info=True)
        finally:
            self._inflight_requests -= 1
            self._notify()
        if self._in_flight.pop(batch_id, None) is None:
            return  # aclose() took these events over
        logger.debug(
            "Amplitude answered %s for %d events (%d bytes) in %.0f ms",
            status or failure, len(batch), nbytes, (monotonic() - started) * 1000,
        )
        self._handle(batch, status, content, failure)

    # -- answers ----------------------------------------------------------------

    def _handle(
        self, batch: list[_Record], status: Optional[int], content: bytes, failure: str
    ) -> None:
        verdict = judge(status, content, _Ids(batch), self._api_key)
        action = verdict.action
        if action is Action.DELIVERED:
            self._failures = 0
            self._pause_until = 0.0
            self._grow()
            self._unqueue(batch)
            self._settle(batch, Outcome.DELIVERED)
            self._maybe_reload()
        elif action is Action.RETRY:
            self._retry(batch, verdict.detail or failure)
        elif action is Action.SPLIT:
            self._streak = 0
            self._split += 1
            self._count_limit = max(1, min(self._count_limit, len(batch) // 2))
            nbytes = sum(len(record[_RAW]) + 1 for record in batch)
            halved = min(self._byte_limit, nbytes // 2)
            self._byte_limit = max(self._envelope + 1, halved)
            logger.warning(
                "Amplitude found a request of %d events too large; sending at most "
                "%d events, %d bytes per request for now",
                len(batch), self._count_limit, self._byte_limit,
            )
            self._requeue_now(batch)
        elif action is Action.DROP:
            self._unqueue(batch)
            assert verdict.reason is not None
            self._settle(batch, Outcome.DROPPED, verdict.reason)
            too_large = verdict.reason is DropReason.TOO_LARGE
            level = logging.WARNING if too_large else logging.ERROR
            logger.log(level, "Amplitude refused %d events (%s): %s; not retried",
                       len(batch), verdict.reason.value, verdict.detail)
        elif action is Action.FATAL:
            self._stop(batch, verdict.detail)
        else:
            self._sort(batch, verdict, status)

    def _grow(self) -> None:
        """Lets the request limits grow back after a 413, slowly."""
        self._streak += 1
        if self._streak < 5:
            return
        self._streak = 0
        if self._count_limit < self._max_batch_events:
            grown = self._count_limit + max(1, self._count_limit // 2)
            self._count_limit = min(self._max_batch_events, grown)
        if self._byte_limit < self._max_batch_bytes:
            grown = self._byte_limit + max(1, self._byte_limit // 2)
            self._byte_limit = min(self._max_batch_bytes, grown)

    def _backoff_delay(self) -> float:
        exponent = min(self._failures - 1, 30)
        delay = min(self._max_backoff, self._backoff * 2**exponent)
        return delay * random.uniform(0.5, 1.0)

    def _retry(self, batch: list[_Record], why: str) -> None:
        self._failures += 1
        self._streak = 0
        delay = self._backoff_delay()
        now = monotonic()
        self._pause_until = max(self._pause_until, now + delay)
        now_ms = time_ns() // 1_000_000
        again: list[_Record] = []
        spent: list[_Record] = []
        for record in batch:
            tries = record[_TRIES] + 1
            if tries > self._max_retries or now_ms - record[_BORN] > self._max_age_ms:
                spent.append(record)
            else:
                again.append(record[:_TRIES] + (tries, record[_BOUNCES]))
        if again:
            self._retried += len(again)
            self._schedule(again, now + delay)
        logger.warning(
            "Amplitude request of %d events failed (%s); retrying %d in %.1f s, "
            "giving up on %d",
            len(batch), why, len(again), delay, len(spent),
        )
        if spent:
            self._unqueue(spent)
            self._lose(spent, DropReason.EXHAUSTED)

    def _stop(self, batch: list[_Record], detail: str) -> None:
        """Amplitude refused the API key: nothing more can be sent."""
        self._refusing = True
        if self._fatal is None:
            self._fatal = f"Amplitude rejected the API key {redact(self._api_key)}"
            logger.error("%s (%s); the emitter stops sending", self._fatal, detail)
        everything = batch + self._take_queued()
        self._unqueue(everything)
        self._lose(everything, DropReason.INVALID_API_KEY)

    def _sort(
        self, batch: list[_Record], verdict: Verdict, status: Optional[int]
    ) -> None:
        """Drops what the answer names, holds the throttled, resends the rest."""
        now = monotonic()
        hold_until = now + self._throttle_hold * random.uniform(1.0, 1.1)
        for key in verdict.throttled_ids:
            self._held[key] = hold_until
        for key in verdict.quota_ids:
            self._quota[key] = now + QUOTA_MEMORY
        if len(self._held) > 65_536 or len(self._quota) > 65_536:
            self._purge_ids(now)
        dropped: dict[DropReason, list[_Record]] = {}
        held: list[_Record] = []
        again: list[_Record] = []
        now_ms = time_ns() // 1_000_000
        for index, record in enumerate(batch):
            reason = verdict.dropped.get(index)
            if reason is not None:
                dropped.setdefault(reason, []).append(record)
            elif index in verdict.held:
                if now_ms - record[_BORN] > self._max_age_ms:
                    dropped.setdefault(DropReason.EXHAUSTED, []).append(record)
                else:
                    held.append(record)
            elif status == 400:
                # Not at fault, never retried for it: resent at once, within
                # a guard against an answer that names one event per round.
                if record[_BOUNCES] >= self._max_batch_events:
                    dropped.setdefault(DropReason.LOOP_GUARD, []).append(record)
                else:
                    again.append(record[:_BOUNCES] + (record[_BOUNCES] + 1,))
            else:
                again.append(record)
        for reason, records in dropped.items():
            self._unqueue(records)
            if reason is DropReason.EXHAUSTED:
                self._lose(records, reason)
                continue
            self._settle(records, Outcome.DROPPED, reason)
            self._warn(reason, len(records), verdict.detail)
        if held:
            self._throttled += len(held)
            self._schedule(held, hold_until)
            logger.warning(
                "Amplitude throttled %d ids; holding %d events for %.0f s",
                len(verdict.throttled_ids), len(held), hold_until - now,
            )
        if again:
            self._requeue_now(again)

    def _purge_ids(self, now: float) -> None:
        for table in (self._held, self._quota):
            for key in [key for key, until in table.items() if until <= now]:
                del table[key]

    # -- shutdown and the spool -------------------------------------------------

    def _take_queued(self) -> list[_Record]:
        """Empties the queue (not the requests under way)."""
        records = list(self._ready)
        self._ready.clear()
        for _, _, group in self._delayed:
            records.extend(group)
        self._delayed.clear()
        self._urgent = False
        return records

    def _take_everything(self) -> list[_Record]:
        """Empties the queue and takes over the requests under way."""
        records = self._take_queued()
        for batch in self._in_flight.values():
            records.extend(batch)
        self._in_flight.clear()
        self._unqueue(records)
        return records

    async def _abandon(self, records: list[_Record]) -> None:
        """The leftovers of aclose(): to the spool, or dropped."""
        if not records and not self._spool_buffer:
            return
        if self._spool is None:
            # aclose() sums these up in one line of its own.
            self._settle(records, Outcome.DROPPED, DropReason.SHUTDOWN)
        else:
            self._spool_buffer.extend(records)
        await self._write_spool_async()

    def _spool_split(self) -> tuple[list[_Record], list[_Record]]:
        buffer = self._spool_buffer
        self._spool_buffer = []
        self._spool_buffer_bytes = 0
        assert self._spool is not None
        room = self._spool.max_bytes - self._spool.size
        fits: list[_Record] = []
        full: list[_Record] = []
        for record in buffer:
            size = len(record[_RAW]) + 1
            if size <= room:
                fits.append(record)
                room -= size
            else:
                full.append(record)
        return fits, full

    def _spooled_or_not(
        self, fits: list[_Record], full: list[_Record], error: Optional[OSError]
    ) -> None:
        if error is not None:
            logger.error("cannot write the spool file %s: %s", self._spool, error)
            self._settle(fits, Outcome.DROPPED, DropReason.SPOOL_ERROR)
        elif fits:
            self._spool_dirty = True
            self._settle(fits, Outcome.SPOOLED)
            logger.warning("spooled %d Amplitude events to %s", len(fits), self._spool)
        if full:
            self._settle(full, Outcome.DROPPED, DropReason.SPOOL_FULL)
            self._warn(DropReason.SPOOL_FULL, len(full), str(self._spool))

    def _write_spool(self) -> None:
        """Writes the spool buffer now (small writes, on the event loop)."""
        if not self._spool_buffer:
            return
        fits, full = self._spool_split()
        error = None
        try:
            assert self._spool is not None
            self._spool.append([record[_RAW] for record in fits])
        except OSError as exc:
            error = exc
        self._spooled_or_not(fits, full, error)

    async def _write_spool_async(self) -> None:
        if not self._spool_buffer:
            return
        fits, full = self._spool_split()
        error = None
        assert self._spool is not None
        try:
            await anyio.to_thread.run_sync(
                self._spool.append, [record[_RAW] for record in fits]
            )
        except OSError as exc:
            error = exc
        self._spooled_or_not(fits, full, error)

    def _maybe_reload(self) -> None:
        """After a delivery, takes back what this emitter spooled earlier."""
        if (
            not self._spool_dirty
            or self._reloading
            or not self._running
            or self._queued_n > self._max_queue // 2
            or monotonic() - self._last_reload < 1.0
        ):
            return
        self._reloading = True
        self._last_reload = monotonic()
        self._spawn(self._load_spool)

    async def _load_spool(self) -> None:
        """Enqueues the spool file's events; puts back what does not fit."""
        assert self._spool is not None
        self._reloading = True
        self._spool_dirty = False
        try:
            lines = await anyio.to_thread.run_sync(self._spool.claim)
        except OSError as exc:
            logger.error("cannot read the spool file %s: %s", self._spool, exc)
            self._reloading = False
            return
        now_ms = time_ns() // 1_000_000
        back: list[bytes] = []
        loaded = 0
        for number, line in enumerate(lines):
            if number % 1000 == 999:
                await anyio.lowlevel.checkpoint()  # a long file must not stall the loop
            if self._queued_n >= self._max_queue or (
                self._queued_b + len(line) > self._max_queue_bytes
            ):
                back.append(line)
                continue
            try:
                event = _decode(line)
                if not isinstance(event, dict) or not event.get("event_type"):
                    raise ValueError("not an event")
            except (msgspec.DecodeError, ValueError):
                self._refuse({"spool_line": line[:200].decode("utf-8", "replace")},
                             DropReason.SPOOL_ERROR, "an unreadable line in the spool")
                continue
            when = event.get("time")
            if type(when) is int and now_ms - when > self._spool_max_age_ms:
                self._refuse(event, DropReason.EXPIRED, "too old to send")
                continue
            user_id, device_id = event.get("user_id"), event.get("device_id")
            self._ready.append((line, user_id, device_id, now_ms, self._epoch, 0, 0))
            self._queued_n += 1
            self._queued_b += len(line)
            self._submitted += 1
            self._open_now += 1
            loaded += 1
        if back:
            try:
                await anyio.to_thread.run_sync(self._spool.append, back)
                self._spool_dirty = True
            except OSError as exc:
                logger.error("cannot put %d events back in the spool file %s: %s",
                             len(back), self._spool, exc)
        self._loaded += loaded
        self._reloading = False
        if loaded:
            self._urgent = True
            self._notify()
            logger.info(
                "read %d Amplitude events from the spool file %s", loaded, self._spool
            )
