"""
The async client: a compiled config kept fresh from ConfigCat's CDN, and
evaluated from an immutable snapshot without I/O.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Union

import anyio
import httpx

from .._errors import ErrorCode, FlagError
from .._version import __version__
from ..config import (
    FlagOverrides,
    OverrideBehaviour,
    decode_config,
    describe_change,
    merge_models,
)
from ..core import Config, EvaluationDetails, User
from ..core._core import stamp_fetch_time
from ._cache import CacheEntry, ConfigCache, MemoryCache, cache_key
from ._fetch import (
    DataGovernance,
    FetchOutcome,
    Fetcher,
    FetchResult,
    check_sdk_key,
    redact,
)
from ._polling import AutoPoll, LazyLoad, LongPoll, ManualPoll

__all__ = ("Client", "ClientClosedError", "RefreshResult", "Snapshot")

logger = logging.getLogger("flagstaff.client")

class _TokenBucket:
    """
    At most `burst` requests at once, then one every `every` seconds.
    """

    def __init__(self, burst: int, every: float) -> None:
        self._burst = burst
        self._every = every
        self._tokens = float(burst)
        self._at = time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) / self._every)
        self._at = now
        if self._tokens < 1:
            await anyio.sleep((1 - self._tokens) * self._every)
            self._tokens = 1.0
            self._at = time.monotonic()
        self._tokens -= 1


class ClientClosedError(FlagError, RuntimeError):
    """
    The client was used outside its ``async with`` block.
    """


@dataclass(frozen=True)
class RefreshResult:
    """
    What :meth:`Client.refresh` achieved.
    """

    is_success: bool
    error: Optional[str] = None


@dataclass(frozen=True)
class Snapshot:
    """
    The config a client serves at one moment: immutable, evaluated
    synchronously and without I/O.
    """

    config: Optional[Config] = None
    fetch_time: Optional[datetime] = None
    etag: str = ""
    text: Optional[str] = None

    @property
    def age(self) -> Optional[float]:
        """
        Seconds since the config was downloaded, or None without one.
        """
        if self.fetch_time is None:
            return None
        return max(0.0, time.time() - self.fetch_time.timestamp())

    def get_value(self, key: str, default: Any, user: Optional[User] = None) -> Any:
        if self.config is None:
            return default
        return self.config.get_value(key, default, user)

    def get_value_details(
        self, key: str, default: Any, user: Optional[User] = None
    ) -> EvaluationDetails:
        if self.config is None:
            return EvaluationDetails(
                key, default, is_default_value=True, user=user,
                error_code=ErrorCode.CONFIG_JSON_NOT_AVAILABLE,
                error="Config JSON is not present. Returning the `default_value` "
                      f"parameter that you specified in your application: '{default}'.",
            )
        details = self.config.get_value_details(key, default, user)
        return stamp_fetch_time(details, self.fetch_time)

    def get_all_values(self, user: Optional[User] = None) -> dict[str, Any]:
        return {} if self.config is None else self.config.get_all_values(user)


Hook = Optional[Callable[..., Any]]


class Client:
    """
    Feature flags of one ConfigCat SDK key, kept fresh in the background.

    Use it as an async context manager; evaluations wait for the first config
    (at most the polling mode's `max_init_wait`), then evaluate from memory.

    :param sdk_key: the SDK key from ConfigCat's dashboard.
    :param polling: :class:`AutoPoll` (default), :class:`LongPoll` (against
        a flagstaff relay), :class:`LazyLoad` or :class:`ManualPoll`.
    :param base_url: a server other than ConfigCat's CDN (a proxy or a
        flagstaff relay).
    :param data_governance: which CDN serves the config when `base_url` is
        not given.
    :param cache: where the last config is kept (default: in memory); in
        ConfigCat's format, so it can be shared with ConfigCat's SDKs.
    :param overrides: local settings, see :class:`~flagstaff.FlagOverrides`.
    :param offline: never download; serve the cache (and overrides).
    :param default_user: the user of evaluations given none.
    :param http_client: an ``httpx.AsyncClient`` to download with; the caller
        closes it. By default the client makes and closes its own.
    :param connect_timeout: seconds to connect to the CDN.
    :param read_timeout: seconds to wait for the CDN's answer.
    :param stale_after: seconds after which serving a config logs a
        warning that it is stale (default: three polling intervals).
    :param on_ready: called once, when the first config arrived or the
        initial wait ran out.
    :param on_config_changed: called with the new :class:`Config`.
    :param on_flags_changed: called with a
        :class:`~flagstaff.config.ConfigChange` (named by the SDK key's
        redacted form) when a download, or the shared cache, replaced the
        config with one that serves something different; not for the first
        config, nor for a config that changed only in its bytes. A
        :class:`~flagstaff.amplitude.ChartAnnotator`'s ``post_change`` fits.
    :param on_flag_evaluated: called with the :class:`EvaluationDetails` of
        every evaluation (the Amplitude emitter attaches here).
    :param on_error: called with a message for every error.
    :param emitter: an :class:`~flagstaff.AmplitudeEmitter` (or anything
        with its ``exposure`` and ``assignment`` methods) that records the
        evaluations; the caller opens and closes it.
    :param evaluation_events: what `emitter` records of each evaluation with
        a user: ``"exposures"`` (one per user and variant a day, after the
        emitter's dedup), ``"assignments"`` (one event per call, all the
        flags of a ``get_all_values`` together), or None. Evaluations that
        served the default are skipped by the emitter unless it is told
        otherwise.
    """

    def __init__(
        self,
        sdk_key: str,
        *,
        polling: Union[AutoPoll, LazyLoad, LongPoll, ManualPoll, None] = None,
        base_url: Optional[str] = None,
        data_governance: DataGovernance = DataGovernance.GLOBAL,
        cache: Optional[ConfigCache] = None,
        overrides: Optional[FlagOverrides] = None,
        offline: bool = False,
        default_user: Optional[User] = None,
        http_client: Optional[httpx.AsyncClient] = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        stale_after: Optional[float] = None,
        on_ready: Hook = None,
        on_config_changed: Hook = None,
        on_flags_changed: Hook = None,
        on_flag_evaluated: Hook = None,
        on_error: Hook = None,
        emitter: Any = None,
        evaluation_events: Optional[str] = "exposures",
    ) -> None:
        local_only = (
            overrides is not None
            and overrides.behaviour is OverrideBehaviour.LOCAL_ONLY
        )
        if not local_only:
            check_sdk_key(sdk_key, base_url is not None)
        self._sdk_key = sdk_key
        self._polling = polling if polling is not None else AutoPoll()
        self._cache = cache if cache is not None else MemoryCache()
        self._cache_key = cache_key(sdk_key)
        self._overrides = overrides
        self._local_only = local_only
        self._offline = offline or local_only
        self.default_user = default_user
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout)
        )
        self._fetcher = Fetcher(
            self._http, sdk_key, base_url, data_governance, self._polling.code, __version__
        )
        # A config is stale after three of the mode's intervals.
        interval = next((getattr(self._polling, name)
                         for name in ("interval", "ttl", "poll_interval")
                         if hasattr(self._polling, name)), None)
        self._stale_after = stale_after or (3 * interval if interval else math.inf)
        if evaluation_events not in ("exposures", "assignments", None):
            raise ValueError(
                f"evaluation_events is 'exposures', 'assignments' or None, "
                f"not {evaluation_events!r}"
            )
        self._emitter = emitter
        self._evaluation_events = evaluation_events if emitter is not None else None
        self._hooks = {
            "ready": on_ready, "changed": on_config_changed,
            "flags_changed": on_flags_changed, "evaluated": on_flag_evaluated,
            "error": on_error,
        }
        self._snapshot = Snapshot()
        self._remote_model = None
        self._local_model = None
        self._overrides_checked = time.monotonic()
        self._ready = anyio.Event()
        self._refreshing: Optional[anyio.Event] = None
        self._last_refresh = RefreshResult(False, "no refresh yet")
        self._failures = 0
        self._task_group: Optional[anyio.abc.TaskGroup] = None
        self._scopes: set[anyio.CancelScope] = set()
        self._closed = False
        self._steady = False

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> "Client":
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        await self._adopt_local()
        if isinstance(self._polling, AutoPoll):
            self._task_group.start_soon(self._background, self._poll_forever)
        elif isinstance(self._polling, LongPoll):
            self._task_group.start_soon(self._background, self._long_poll_forever)
        else:
            await self._sync_cache()
            self._set_ready()
        return self

    async def __aexit__(self, *exc_info: Any) -> Optional[bool]:
        await self.aclose()
        if self._task_group is not None:
            # The task group is left in the scope it was entered in, once its
            # tasks (cancelled by aclose) are done. An exception of the
            # caller's block is not handed to it, so that it propagates as
            # it was raised rather than wrapped in an exception group.
            await self._task_group.__aexit__(None, None, None)
        return None

    async def aclose(self) -> None:
        """
        Stops the background work and closes the HTTP client it made.
        Returns promptly even while a download hangs; evaluations waiting
        for the first config serve what there is (the defaults, if nothing).

        The client's tasks live in the ``async with`` block that opened it:
        ``aclose()`` inside the block (or from another task) ends the client
        early, and leaving the block finishes the job. Safe to call twice.
        """
        if self._closed:
            return
        self._closed = True
        self._steady = False
        # Only the client's own work is cancelled, not the caller's code
        # inside the ``async with`` block.
        for scope in list(self._scopes):
            scope.cancel()
        # Wake whoever waits: for the first config, or for a download that
        # will not finish now.
        self._ready.set()
        if self._refreshing is not None:
            self._last_refresh = RefreshResult(False, "the client closed during the download")
            self._refreshing.set()
        if self._own_http:
            with anyio.CancelScope(shield=True):
                await self._http.aclose()

    # -- evaluation ---------------------------------------------------------

    async def get_value(self, key: str, default: Any, user: Optional[User] = None) -> Any:
        """
        The value of setting `key` for `user` (or the default user).

        Waits for the first config at most the polling mode's initial wait;
        never raises for a flag problem. Safe to cancel.
        """
        if user is None:
            user = self.default_user
        if self._steady:
            # Ready, nothing to wait for or to re-read: straight to memory.
            config = self._snapshot.config
            return default if config is None else config.get_value(key, default, user)
        if self._listened:
            return (await self.get_value_details(key, default, user)).value
        snapshot = await self._current()
        return snapshot.get_value(key, default, user)

    async def get_value_details(
        self, key: str, default: Any, user: Optional[User] = None
    ) -> EvaluationDetails:
        """
        :meth:`get_value` with what served the value and the config's
        download time (``fetch_time``).
        """
        await self._current()
        return self.evaluate_now(key, default, user)

    def evaluate_now(
        self, key: str, default: Any, user: Optional[User] = None
    ) -> EvaluationDetails:
        """
        :meth:`get_value_details` without waiting, for synchronous callers
        (OpenFeature's sync API): evaluates the config held now, serving
        `default` while there is none, and tells the listeners
        (``on_flag_evaluated``, the emitter) as the awaitable does.
        """
        user = user if user is not None else self.default_user
        details = self._snapshot.get_value_details(key, default, user)
        self._evaluated([details])
        return details

    async def get_all_values(self, user: Optional[User] = None) -> dict[str, Any]:
        """
        Every setting's value for `user`: ``{key: value}``.
        """
        snapshot = await self._current()
        user = user if user is not None else self.default_user
        if not self._listened or snapshot.config is None:
            return snapshot.get_all_values(user)
        evaluated = snapshot.config.get_all_value_details(user)
        for details in evaluated:
            stamp_fetch_time(details, snapshot.fetch_time)
        self._evaluated(evaluated)
        return {details.key: details.value for details in evaluated
                if not details.is_default_value}

    @property
    def _listened(self) -> bool:
        # Someone wants each evaluation's details: the hook or the emitter.
        return self._hooks["evaluated"] is not None or self._evaluation_events is not None

    def _evaluated(self, evaluated: list) -> None:
        for details in evaluated:
            self._call("evaluated", details)
        if self._evaluation_events is None:
            return
        try:
            if self._evaluation_events == "exposures":
                for details in evaluated:
                    self._emitter.exposure(details)
            else:
                self._emitter.assignment(evaluated)
        except Exception as exc:
            logger.warning("the emitter refused an evaluation: %r", exc)
            self._report(f"the emitter refused an evaluation: {exc!r}")

    def snapshot(self) -> Snapshot:
        """
        The config served now, to evaluate synchronously.
        """
        return self._snapshot

    async def refresh(self) -> RefreshResult:
        """
        Downloads the config now (sharing a download already under way).
        """
        self._check_open()
        if self._offline:
            return RefreshResult(False, "the client is offline: nothing was downloaded")
        return await self._refresh()

    # -- internals ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._task_group is None or self._closed:
            raise ClientClosedError(
                "use the client inside 'async with flagstaff.Client(...)'"
            )

    async def _current(self) -> Snapshot:
        self._check_open()
        if self._overrides is not None and self._overrides.is_file:
            now = time.monotonic()
            if now - self._overrides_checked >= 1.0:
                self._overrides_checked = now
                await self._adopt_local()
        if not self._ready.is_set():
            wait = getattr(self._polling, "max_init_wait", 0)
            with anyio.move_on_after(wait):
                await self._ready.wait()
            self._set_ready()
        if isinstance(self._polling, LazyLoad) and not self._offline:
            age = self._snapshot.age
            if age is None or age >= self._polling.ttl:
                await self._refresh()
        return self._snapshot

    def _set_ready(self) -> None:
        if not self._ready.is_set():
            self._ready.set()
            self._call("ready")
        # From now on an evaluation needs no wait, download or file check,
        # unless its polling mode, overrides or hooks ask for one.
        self._steady = (
            not self._closed
            and not isinstance(self._polling, LazyLoad)
            and (self._overrides is None or not self._overrides.is_file)
            and not self._listened
        )

    def _call(self, hook: str, *args: Any) -> None:
        callback = self._hooks[hook]
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as exc:
            logger.warning("the %s hook raised %r", hook, exc)
            if hook != "error":
                self._report(f"the {hook} hook raised {exc!r}")

    def _report(self, message: str) -> None:
        self._call("error", message)

    async def _poll_forever(self) -> None:
        interval = self._polling.interval
        while True:
            await self._adopt_local()
            age = self._snapshot.age
            if age is None or age >= interval:
                await self._sync_cache()
            if self._snapshot.config is not None:
                # A cached config serves at once, even while a download for
                # a fresher one is under way (or the CDN is down).
                self._set_ready()
            age = self._snapshot.age
            if not self._offline and (age is None or age >= interval):
                await self._refresh()
            self._set_ready()
            await anyio.sleep(self._next_wait(interval))

    async def _long_poll_forever(self) -> None:
        # long-poll.md's client: the first request is answered at once; then
        # each asks to be held, through a token bucket so that a config that
        # changes all the time cannot make it spin.
        polling = self._polling
        bucket = _TokenBucket(burst=2, every=15.0)
        hold_again_at = 0.0
        await self._adopt_local()
        await self._sync_cache()
        if self._snapshot.config is not None:
            self._set_ready()
        wait: Optional[float] = None
        while True:
            if not self._offline:
                result = await self._fetcher.fetch(self._snapshot.etag or None, wait)
                applied = await self._apply(result)
            else:
                applied, result = RefreshResult(True), FetchResult(FetchOutcome.NOT_MODIFIED)
                await self._sync_cache()
            self._set_ready()

            if not applied.is_success:
                # Full jitter from 1 s up to 120 s; Retry-After wins.
                delay = random.uniform(0, min(120.0, 2.0 ** min(self._failures, 7)))
                await anyio.sleep(max(delay, result.retry_after or 0.0))
                continue
            if self._offline:
                await anyio.sleep(polling.poll_interval)
                continue
            if wait is not None and not result.held and result.retry_after is None:
                # A server that does not hold: poll it plainly for a while.
                logger.info("the config server does not hold requests: polling "
                            "every %g s", polling.poll_interval)
                hold_again_at = time.monotonic() + polling.retry_hold_after
            if time.monotonic() < hold_again_at:
                wait = None
                await anyio.sleep(polling.poll_interval)
                continue
            if result.retry_after is not None and not result.held:
                await anyio.sleep(result.retry_after)   # too many held already
            wait = polling.wait
            await bucket.take()

    async def _background(self, work: Callable[..., Any], *args: Any) -> None:
        # Each background task runs in a scope of its own, which aclose()
        # cancels; one started after the close does not run at all.
        if self._closed:
            return
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await work(*args)
            finally:
                self._scopes.discard(scope)

    def _next_wait(self, interval: float) -> float:
        # After failures, try again sooner than the interval but back off
        # exponentially, with jitter so that many processes spread out.
        if not self._failures:
            return interval
        backoff = min(interval, 2.0 ** min(self._failures - 1, 10))
        return backoff * random.uniform(0.5, 1.0)

    async def _refresh(self) -> RefreshResult:
        # Concurrent callers share one download, run in the client's task
        # group so that a caller's cancellation does not abort it.
        if self._refreshing is None:
            self._refreshing = anyio.Event()
            assert self._task_group is not None
            self._task_group.start_soon(self._background, self._download, self._refreshing)
        await self._refreshing.wait()
        return self._last_refresh

    async def _download(self, done: anyio.Event) -> None:
        self._last_refresh = RefreshResult(False, "the client closed during the download")
        try:
            self._last_refresh = await self._download_once()
        finally:
            self._refreshing = None
            done.set()

    async def _download_once(self) -> RefreshResult:
        return await self._apply(await self._fetcher.fetch(self._snapshot.etag or None))

    async def _apply(self, result: FetchResult) -> RefreshResult:
        """Serves what a download brought, or keeps the config held."""
        held = self._snapshot
        now = datetime.now(timezone.utc)
        if result.outcome is FetchOutcome.FETCHED:
            self._failures = 0
            await self._adopt(Snapshot(None, now, result.etag, result.text), result.model)
            if result.error:
                self._report(result.error)
            return RefreshResult(True, result.error)
        if result.outcome is FetchOutcome.NOT_MODIFIED:
            self._failures = 0
            logger.debug("config not modified (ETag %s)", held.etag)
            self._snapshot = Snapshot(held.config, now, held.etag, held.text)
            await self._write_cache()
            return RefreshResult(True)

        self._failures += 1
        if not result.transient and held.config is not None:
            # A wrong key will not heal soon: wait a full interval.
            self._snapshot = Snapshot(held.config, now, held.etag, held.text)
            self._failures = 0
        logger.warning("config download failed: %s", result.error)
        if held.age is not None and held.age > self._stale_after:
            logger.warning("serving a config downloaded %.0f s ago", held.age)
        self._report(f"config download failed: {result.error}")
        return RefreshResult(False, result.error)

    async def _adopt(self, snapshot: Snapshot, model, from_cache: bool = False) -> None:
        """Makes a downloaded (or cached) config the one served."""
        config = self._compile(model)
        held = self._snapshot
        changed = held.config is None or (snapshot.etag, snapshot.text) != (held.etag, held.text)
        self._snapshot = Snapshot(config, snapshot.fetch_time, snapshot.etag, snapshot.text)
        if not from_cache:
            await self._write_cache()
        if changed:
            logger.info("new config in effect (ETag %s)", snapshot.etag)
            self._call("changed", config)
            if held.config is not None and self._hooks["flags_changed"] is not None:
                self._tell_flags_changed(held.config, config)

    def _tell_flags_changed(self, previous: Config, config: Config) -> None:
        try:
            change = describe_change(previous, config, name=redact(self._sdk_key))
        except Exception as exc:
            logger.warning("the change of config could not be described: %r", exc)
            self._report(f"the change of config could not be described: {exc!r}")
            return
        if change:
            self._call("flags_changed", change)

    def _compile(self, model) -> Config:
        self._remote_model = model
        if self._overrides is None:
            return Config.from_model(model)
        return Config.from_model(merge_models(model, self._local_model, self._overrides.behaviour))

    async def _adopt_local(self) -> None:
        """Reads the override file again if it changed, and serves it."""
        if self._overrides is None:
            return
        try:
            local = await anyio.to_thread.run_sync(self._overrides.load)
        except (OSError, FlagError) as exc:
            self._report(f"the flag overrides could not be read: {exc}")
            local = None
        if local is self._local_model:
            return
        self._local_model = local
        if self._overrides.behaviour is OverrideBehaviour.LOCAL_ONLY:
            config = Config.from_model(local) if local is not None else None
            self._snapshot = Snapshot(config, datetime.now(timezone.utc))
        elif self._remote_model is not None:
            held = self._snapshot
            config = self._compile(self._remote_model)
            self._snapshot = Snapshot(config, held.fetch_time, held.etag, held.text)
        elif local is not None:
            # No remote config yet: the overrides serve alone meanwhile.
            self._snapshot = Snapshot(Config.from_model(local), None)
        if self._snapshot.config is not None:
            self._call("changed", self._snapshot.config)

    async def _sync_cache(self) -> None:
        """Adopts a newer config another process left in the cache."""
        if self._local_only:
            return
        try:
            value = await self._cache.get(self._cache_key)
        except Exception as exc:
            self._report(f"the config cache could not be read: {exc!r}")
            return
        if not value:
            return
        entry = CacheEntry.parse(value)
        if entry is None:
            self._report("the cached config entry is not in ConfigCat's format")
            return
        fetch_time = datetime.fromtimestamp(entry.fetch_time_ms / 1000, timezone.utc)
        held = self._snapshot
        if entry.etag == held.etag:
            if held.fetch_time is None or fetch_time > held.fetch_time:
                self._snapshot = Snapshot(held.config, fetch_time, held.etag, held.text)
            return
        try:
            model = decode_config(entry.text)
        except FlagError as exc:
            self._report(f"the cached config is not a config: {exc}")
            return
        snapshot = Snapshot(None, fetch_time, entry.etag, entry.text)
        await self._adopt(snapshot, model, from_cache=True)

    async def _write_cache(self) -> None:
        held = self._snapshot
        if held.text is None or held.fetch_time is None:
            return
        entry = CacheEntry(int(held.fetch_time.timestamp() * 1000), held.etag, held.text)
        try:
            await self._cache.set(self._cache_key, entry.serialize())
        except Exception as exc:
            self._report(f"the config cache could not be written: {exc!r}")

    def __repr__(self) -> str:
        return f"<flagstaff.Client {redact(self._sdk_key)} {type(self._polling).__name__}>"
