"""
Chart annotations: a line on every chart of an Amplitude project (or on one
chart) at the day a flag changed, so that a jump in a metric can be read
next to its cause (amplitude.md §3.5a).

The annotator posts to Amplitude's chart annotation API, version 2, from a
background task: a caller enqueues and goes on, however slow or broken
Amplitude is. It knows nothing of configs: it posts anything with a
``label`` and ``details``, such as a :class:`~flagstaff.config.ConfigChange`.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional, Union

import anyio
import anyio.abc
import httpx
import msgspec

from .._version import __version__

__all__ = ("Annotation", "AnnotatorStats", "ChartAnnotator")

logger = logging.getLogger("flagstaff.amplitude")

HOSTS = {"US": "https://amplitude.com", "EU": "https://analytics.eu.amplitude.com"}
ANNOTATIONS_PATH = "/api/2/annotations"

_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True)
class Annotation:
    """
    One chart annotation, as posted.

    :param label: the line shown on the chart.
    :param details: the text shown when the annotation is opened, or None.
    :param date: the day it marks, ``YYYY-MM-DD`` in UTC: the day it was
        enqueued, not the day a retry delivered it.
    """

    label: str
    details: Optional[str]
    date: str


@dataclass(frozen=True)
class AnnotatorStats:
    """
    The annotator's counters.

    :param posted: annotations Amplitude stored.
    :param failed: annotations whose last attempt failed (refused, or
        retried until ``max_retries`` ran out).
    :param dropped: annotations never sent: the queue was full, or the
        annotator closed before their turn.
    :param retried: attempts repeated after a 429, a 5xx or a network error.
    :param pending: annotations waiting or being sent now.
    """

    posted: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0
    pending: int = 0


#: ``on_outcome(annotation, error)``: error is None when Amplitude stored it
OutcomeCallback = Callable[[Annotation, Optional[str]], Any]


class _Retry(Exception):
    """A failure worth another attempt: a 429, a 5xx, a network error."""

    def __init__(self, reason: str, after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.after = after


class _Refused(Exception):
    """A failure that another attempt would not mend."""


class ChartAnnotator:
    """
    Posts chart annotations to an Amplitude project; use it as an async
    context manager, which runs its background task.

    :meth:`post` and :meth:`post_change` never block and never raise on
    network trouble: they enqueue. Each annotation then ends posted or
    failed, once: a failure is logged as a WARNING, counted in
    :attr:`stats` and reported to `on_outcome`, never raised. The secret
    key is sent in the ``Authorization`` header only; no log line, repr or
    error message carries it.

    :param api_key: the project's API key.
    :param secret_key: the project's secret key (the annotation API needs
        both, as HTTP Basic auth).
    :param app_id: the project's id, a number.
    :param server_zone: ``"US"`` (default, ``amplitude.com``) or ``"EU"``
        (``analytics.eu.amplitude.com``).
    :param server_url: another base URL (a proxy, a test server); the API's
        path is added to it.
    :param chart_id: put the annotations on this chart only; by default
        they show on every chart of the project.
    :param http_client: an ``httpx.AsyncClient`` to post with; the caller
        closes it. By default the annotator makes and closes its own.
    :param timeout: seconds per attempt.
    :param max_retries: attempts after the first that a 429, a 5xx, a
        timeout or a network error may cost an annotation.
    :param backoff: seconds before the first retry; it doubles per retry
        (with jitter) up to `max_backoff`, and ``Retry-After`` wins within
        that bound.
    :param max_backoff: the longest wait between two attempts.
    :param max_queue: annotations waiting at most; past it a new one is
        dropped (and logged).
    :param close_deadline: seconds ``async with`` gives :meth:`aclose` to
        post what waits.
    :param on_outcome: called as ``on_outcome(annotation, error)`` once per
        annotation, with error None when it was posted, else why not. It
        runs on the event loop; its exceptions are logged.
    :raises ValueError: for a missing key, an app id that is not a
        number, or an unknown server zone.
    """

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        app_id: Union[int, str],
        *,
        server_zone: str = "US",
        server_url: Optional[str] = None,
        chart_id: Union[int, str, None] = None,
        http_client: Optional[httpx.AsyncClient] = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_queue: int = 1000,
        close_deadline: float = 10.0,
        on_outcome: Optional[OutcomeCallback] = None,
    ) -> None:
        for name, key in (("API key", api_key), ("secret key", secret_key)):
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"an Amplitude {name} is required")
        if not str(app_id).strip().isdigit():
            raise ValueError(f"the Amplitude app id is a number, not {app_id!r}")
        if max_retries < 0 or max_queue < 1 or timeout <= 0:
            raise ValueError("max_retries must be >= 0, max_queue and timeout > 0")
        self.url = annotations_url(server_zone, server_url)
        self._secret = secret_key
        self._auth = httpx.BasicAuth(api_key, secret_key)
        self._app_id = str(app_id).strip()
        self._chart_id = None if chart_id is None else str(chart_id)
        self._timeout = timeout
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._headers = {"Accept": "application/json",
                         "User-Agent": f"flagstaff/{__version__}"}
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_queue = max_queue
        self._close_deadline = close_deadline
        self._on_outcome = on_outcome

        self._queue: deque[Annotation] = deque()
        self._sending = 0
        self._posted = 0
        self._failed = 0
        self._dropped = 0
        self._retried = 0
        #: set by the sender when it should look at the queue again
        self._wake: Optional[anyio.Event] = None
        #: replaced each time an annotation settles; flush() waits on it
        self._settled: Optional[anyio.Event] = None
        self._task_group: Optional[anyio.abc.TaskGroup] = None
        self._running = False
        self._closed = False

    def __repr__(self) -> str:
        return f"ChartAnnotator(app_id={self._app_id!r}, url={self.url!r})"

    # -- the public face ------------------------------------------------------

    @property
    def stats(self) -> AnnotatorStats:
        """
        A snapshot of the counters.
        """
        return AnnotatorStats(
            posted=self._posted,
            failed=self._failed,
            dropped=self._dropped,
            retried=self._retried,
            pending=len(self._queue) + self._sending,
        )

    def post(self, label: str, details: Optional[str] = None) -> bool:
        """
        Enqueues an annotation dated today (UTC); the background task posts
        it. Never blocks, never raises for Amplitude's sake.

        :param label: the line shown on the charts.
        :param details: the longer text shown when it is opened.
        :return: True when enqueued; False when the annotator is closed or
            its queue is full (the annotation is then dropped and reported).
        """
        annotation = Annotation(_one_line(str(label)), details, _today())
        if self._closed or len(self._queue) >= self._max_queue:
            why = "the annotator is closed" if self._closed else "the queue is full"
            self._dropped += 1
            logger.warning("chart annotation %r dropped: %s", annotation.label, why)
            self._report(annotation, f"dropped: {why}")
            return False
        self._queue.append(annotation)
        if self._wake is not None:
            self._wake.set()
        return True

    def post_change(self, change: Any) -> bool:
        """
        Enqueues the annotation of a change: anything with a ``label`` and
        ``details``, such as a :class:`~flagstaff.config.ConfigChange`. A
        change that is false (nothing changed) is not posted.

        Fit to be a relay's or a client's ``on_flags_changed`` hook.

        :return: True when enqueued.
        """
        if not change:
            return False
        return self.post(change.label, change.details)

    async def annotate(self, label: str, details: Optional[str] = None) -> bool:
        """
        Posts an annotation now, retrying as the background task does, and
        says whether Amplitude stored it. Never raises for Amplitude's sake;
        a failure is reported as for :meth:`post`.

        Cancelling is safe: the annotation may or may not have been stored.

        :raises RuntimeError: when the annotator is not open (``async with``).
        """
        if not self._running:
            raise RuntimeError("the annotator posts only inside 'async with'")
        annotation = Annotation(_one_line(str(label)), details, _today())
        self._sending += 1
        try:
            return await self._deliver(annotation)
        finally:
            self._sending -= 1
            self._wake_flushes()

    async def flush(self) -> None:
        """
        Waits until every annotation enqueued so far is posted or failed
        (retries included; bound it with :func:`anyio.fail_after`).

        Cancelling is safe: the annotations stay queued.

        :raises RuntimeError: when the annotator is not open (``async with``).
        """
        if self._closed:
            return
        if not self._running:
            raise RuntimeError("the annotator posts only inside 'async with'")
        while self._queue or self._sending:
            if self._settled is None:
                self._settled = anyio.Event()
            await self._settled.wait()

    async def aclose(self, deadline: Optional[float] = None) -> AnnotatorStats:
        """
        Stops taking annotations, posts what waits for at most `deadline`
        seconds (default: `close_deadline`), drops the rest with a warning
        and closes the HTTP client it made. Safe to call twice.

        :return: the final counters.
        """
        if self._closed:
            return self.stats
        deadline = self._close_deadline if deadline is None else deadline
        try:
            if self._running:
                with anyio.move_on_after(deadline):
                    await self.flush()
        finally:
            self._closed = True
            self._running = False
            if self._task_group is not None:
                # The sender, whether it started yet or not.
                self._task_group.cancel_scope.cancel()
            left = list(self._queue)
            self._queue.clear()
            for annotation in left:
                self._dropped += 1
                self._report(annotation, "dropped: the annotator closed first")
            if left:
                logger.warning("chart annotator closed with %d annotations not "
                               "posted", len(left))
            if self._own_http:
                with anyio.CancelScope(shield=True):
                    await self._http.aclose()
        return self.stats

    async def __aenter__(self) -> "ChartAnnotator":
        if self._closed or self._task_group is not None:
            raise RuntimeError("an annotator is opened once")
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._running = True
        self._wake = anyio.Event()
        self._task_group.start_soon(self._run, name="flagstaff chart annotator")
        logger.info("chart annotations for Amplitude app %s go to %s", self._app_id,
                    self.url)
        return self

    async def __aexit__(self, *exc_info: Any) -> Optional[bool]:
        try:
            await self.aclose()
        finally:
            assert self._task_group is not None
            # The caller's exception is not handed to the task group, so
            # that it propagates as raised rather than in an exception group.
            await self._task_group.__aexit__(None, None, None)
        return None

    # -- sending ------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                assert self._wake is not None
                await self._wake.wait()
                self._wake = anyio.Event()
                continue
            annotation = self._queue.popleft()
            self._sending += 1
            settled = False
            try:
                await self._deliver(annotation)
                settled = True
            finally:
                self._sending -= 1
                if not settled:
                    # aclose() cancelled the attempt at its deadline.
                    self._dropped += 1
                    self._report(annotation, "dropped: the annotator closed first")
                self._wake_flushes()

    async def _deliver(self, annotation: Annotation) -> bool:
        """Posts `annotation` with retries; reports and counts its outcome."""
        attempt = 0
        while True:
            try:
                await self._attempt(annotation)
            except _Retry as retry:
                if attempt >= self._max_retries:
                    return self._fail(annotation, f"{retry} ({attempt + 1} attempts)")
                delay = self._delay(attempt, retry.after)
                logger.warning("chart annotation %r not posted (%s): retrying in "
                               "%.1f s", annotation.label, retry, delay)
                attempt += 1
                self._retried += 1
                await anyio.sleep(delay)
            except _Refused as refused:
                return self._fail(annotation, str(refused))
            else:
                self._posted += 1
                logger.info("chart annotation %r posted for %s", annotation.label,
                            annotation.date)
                self._report(annotation, None)
                return True

    async def _attempt(self, annotation: Annotation) -> None:
        """One request; raises _Retry or _Refused unless it was stored."""
        params = {"app_id": self._app_id, "date": annotation.date,
                  "label": annotation.label}
        if annotation.details:
            params["details"] = annotation.details
        if self._chart_id is not None:
            params["chart_id"] = self._chart_id
        try:
            response = await self._http.post(
                self.url, params=params, auth=self._auth, headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            raise _Retry(f"no answer in {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise _Retry(self._scrub(f"{type(exc).__name__}: {exc}")) from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", _retry_after(response))
        if status in (401, 403):
            raise _Refused(f"HTTP {status}: Amplitude refused the API key and "
                           "secret key")
        if not 200 <= status < 300:
            raise _Refused(f"HTTP {status}: {self._scrub(response.text[:200])}")
        try:
            answer = _decode(response.content)
        except msgspec.DecodeError:
            raise _Refused(f"HTTP {status} without a JSON answer") from None
        if not isinstance(answer, dict) or answer.get("success") is not True:
            raise _Refused(f"HTTP {status} without success: "
                           f"{self._scrub(response.text[:200])}")

    def _delay(self, attempt: int, after: Optional[float]) -> float:
        backoff = min(self._max_backoff, self._backoff * 2.0 ** attempt)
        delay = backoff * random.uniform(0.5, 1.0)
        if after is not None:
            delay = max(delay, after)
        return min(delay, self._max_backoff)

    def _fail(self, annotation: Annotation, error: str) -> bool:
        self._failed += 1
        logger.warning("chart annotation %r for %s failed: %s", annotation.label,
                       annotation.date, error)
        self._report(annotation, error)
        return False

    def _report(self, annotation: Annotation, error: Optional[str]) -> None:
        if self._on_outcome is None:
            return
        try:
            self._on_outcome(annotation, error)
        except Exception:
            logger.warning("on_outcome raised for chart annotation %r",
                           annotation.label, exc_info=True)

    def _wake_flushes(self) -> None:
        if self._settled is not None:
            self._settled.set()
            self._settled = None

    def _scrub(self, text: str) -> str:
        """`text` without the secret key, should an answer echo it."""
        return text.replace(self._secret, "***")


def annotations_url(server_zone: str = "US", server_url: Optional[str] = None) -> str:
    """
    The URL annotations are posted to: `server_url` (a base URL) with the
    API's path, or Amplitude's host for the zone.

    :raises ValueError: for an unknown zone or a URL that is not http(s).
    """
    if server_url is not None:
        url = httpx.URL(server_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"server_url must be an http(s) URL, not {server_url!r}")
        return server_url.rstrip("/") + ANNOTATIONS_PATH
    try:
        return HOSTS[server_zone.upper()] + ANNOTATIONS_PATH
    except (KeyError, AttributeError):
        message = f"server_zone must be 'US' or 'EU', not {server_zone!r}"
        raise ValueError(message) from None


def _retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def _one_line(text: str) -> str:
    return " ".join(text.split())
