"""
The relay's ASGI app: ConfigCat's CDN path with long-poll holding, the admin
endpoint, the health page, and the lifespan that runs the sources.

A held request is one task, the request's own, waiting for its connection to
close inside a cancel scope: the scope's deadline ends the hold, a publish
cancels the scopes held on the version it replaces, and a disconnect ends
the wait by itself, so that a gone client frees its slot at once.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import random
import re
import time
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from typing import Any, AsyncContextManager, Callable, Optional, Union

import anyio
import msgspec
from anyio.abc import TaskGroup

from .._errors import ConfigError
from ..client._fetch import DataGovernance, redact
from ..config import ConfigChange
from ._configs import Feed, Version
from ._sources import CDNSource, FileSource, Source

__all__ = ("MAX_WAIT", "Relay", "create_app")

logger = logging.getLogger("flagstaff.relay")

_CONFIG_HEAD = "/configuration-files/"
_CONFIG_TAIL = "/config_v6.json"
_ADMIN_HEAD = "/admin/configs/"
_HEALTH = "/health"

#: the longest hold the protocol allows: below the 60 s idle timeout of
#: nginx and most load balancers
MAX_WAIT = 55.0
#: an SDK key the admin endpoint accepts: printable ASCII, no white space
_ADMIN_KEY = re.compile(r"[!-~]{1,256}")
#: the most a GET may carry as a body (it is read and ignored)
_MAX_GET_BODY = 8 * 1024
#: a config up to this size fits below the write buffer's high-water mark
#: of asyncio's transports (64 KiB)
_SMALL_BODY = 32 * 1024

_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-cache")]
_CLOSE = (b"connection", b"close")
_encode = msgspec.json.Encoder().encode


class _Gone(Exception):
    """The client disconnected before its request was complete."""


class Relay:
    """
    The long-poll relay, an ASGI 3 app.

    It serves ``GET /configuration-files/{sdk_key}/config_v6.json`` as
    ConfigCat's CDN does (strong ETags, ``304`` for a matching
    ``If-None-Match``) and holds a request that carries ``Prefer: wait=N``
    until the config changes, as ``long-poll.md`` describes. ``GET /health``
    reports every config, and ``PUT /admin/configs/{sdk_key}`` publishes one
    when an admin token is set. The sources start with the ASGI lifespan.

    :param sources: where the configs come from, one source per SDK key.
    :param admin_token: enables the admin endpoint, which then requires
        ``Authorization: Bearer <admin_token>``; None disables it.
    :param max_held: how many requests may be held at once; past it a request
        is answered as a plain poll, with ``Retry-After``.
    :param max_requests: how many requests may be open at once, held ones
        included (default: `max_held` + 1000); past it the relay answers
        ``503`` with ``Retry-After``.
    :param max_wait: the longest hold, in seconds (at most 55).
    :param retry_after: the ``Retry-After`` sent, in seconds, jittered by
        half either way.
    :param max_body: the largest config the admin endpoint accepts, in bytes.
    :param max_path: the longest request path, in bytes (``414`` past it).
    :param max_header_bytes: the most header bytes a request may carry
        (``431`` past it).
    :param body_timeout: seconds a client has to send a request body.
    :param send_timeout: seconds a client has to take a config response
        larger than 32 KiB (a smaller one is written without waiting).
    :param init_wait: seconds the startup waits for every source's first
        attempt before the server starts listening.
    :param shutdown_timeout: seconds :meth:`shutdown` waits for the held
        requests' answers to go out.
    :param max_admin_configs: how many SDK keys the admin endpoint may add.
    :param on_flags_changed: called with a :class:`~flagstaff.config.ConfigChange`
        each time a publish (from a source or the admin endpoint) replaced a
        config with one that serves something different; not for a key's
        first config. The change is named by the SDK key's redacted form.
        It is called on the relay's event loop once the new config is
        served, so it must return at once (say, by enqueueing: a
        :class:`~flagstaff.amplitude.ChartAnnotator`'s ``post_change``);
        what it raises is logged and does not touch the publish.
    :param services: async context managers the lifespan enters before the
        sources start and leaves after the held requests are answered, such
        as what `on_flags_changed` hands its work to.
    :raises ValueError: for a limit out of range, or two sources of one key.
    """

    def __init__(
        self,
        sources: Iterable[Source] = (),
        *,
        admin_token: Optional[str] = None,
        max_held: int = 10_000,
        max_requests: Optional[int] = None,
        max_wait: float = MAX_WAIT,
        retry_after: float = 5.0,
        max_body: int = 1024 * 1024,
        max_path: int = 1024,
        max_header_bytes: int = 8 * 1024,
        body_timeout: float = 10.0,
        send_timeout: float = 30.0,
        init_wait: float = 5.0,
        shutdown_timeout: float = 5.0,
        max_admin_configs: int = 1000,
        on_flags_changed: Optional[Callable[[ConfigChange], Any]] = None,
        services: Iterable[AsyncContextManager[Any]] = (),
    ) -> None:
        if max_held < 0:
            raise ValueError(f"max_held is negative: {max_held}")
        if not 0 < max_wait <= MAX_WAIT:
            raise ValueError(f"max_wait is above 0 and at most {MAX_WAIT:g} s, "
                             f"not {max_wait}")
        if admin_token is not None and not admin_token.strip():
            raise ValueError("the admin token is empty")
        self._sources = list(sources)
        self._on_flags_changed = on_flags_changed
        self._services = list(services)
        self._feeds: dict[str, Feed] = {}
        for source in self._sources:
            if source.sdk_key in self._feeds:
                label = redact(source.sdk_key)
                raise ValueError(f"two sources for the SDK key {label}")
            self._feeds[source.sdk_key] = Feed(source.sdk_key, source.kind,
                                               on_flags_changed)
        self._admin_token = admin_token.encode() if admin_token is not None else None
        self._max_held = max_held
        self._max_requests = max_held + 1000 if max_requests is None else max_requests
        self._max_wait = max_wait
        self._retry_after = retry_after
        self._max_body = max_body
        self._max_path = max_path
        self._max_header_bytes = max_header_bytes
        self._body_timeout = body_timeout
        self._send_timeout = send_timeout
        self._init_wait = init_wait
        self._shutdown_timeout = shutdown_timeout
        self._max_admin_configs = max_admin_configs
        self._admin_configs = 0
        self._held = 0
        self._open = 0
        self._closing = False
        #: set when the last held request is answered after shutdown began
        self._drained: Optional[anyio.Event] = None

    # -- the public surface ---------------------------------------------------

    @property
    def held(self) -> int:
        """
        How many requests are held now.
        """
        return self._held

    def publish(self, sdk_key: str, raw: bytes) -> bool:
        """
        Serves `raw` for `sdk_key` from now on and answers the requests held
        on the config it replaces; a new key is added as an admin config.
        Call it in the relay's event loop.

        :return: whether the config changed.
        :raises ConfigError: when `raw` is not a config_v6 document; the
            config served stays as it is.
        """
        feed = self._feeds.get(sdk_key)
        if feed is not None:
            return feed.publish(raw)
        feed = Feed(sdk_key, "admin", self._on_flags_changed)
        feed.publish(raw)
        self._feeds[sdk_key] = feed
        self._admin_configs += 1
        return True

    def health(self) -> dict[str, Any]:
        """
        What ``GET /health`` shows: per config whether it is loaded, its age
        and ETag, its source, and the held requests; SDK keys are redacted.
        """
        now = time.monotonic()
        configs = [feed.health(now) for feed in self._feeds.values()]
        ready = not self._closing and all(config["loaded"] for config in configs)
        return {
            "status": "ok" if ready else "unavailable",
            "closing": self._closing,
            "held": self._held,
            "max_held": self._max_held,
            "open": self._open,
            "configs": configs,
        }

    async def shutdown(self) -> None:
        """
        Answers every held request with its ``304`` and waits (at most
        `shutdown_timeout`) until the answers are out; from now on every
        request is answered ``503``. Calling it again only waits again.
        """
        if not self._closing:
            self._closing = True
            logger.info("relay shutting down: answering %d held requests", self._held)
            for feed in self._feeds.values():
                feed.release()
        if self._held:
            if self._drained is None:
                self._drained = anyio.Event()
            with anyio.move_on_after(self._shutdown_timeout):
                await self._drained.wait()

    # -- ASGI -------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "http":
            self._open += 1
            try:
                await self._http(scope, receive, send)
            except _Gone:
                pass
            finally:
                self._open -= 1
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        # The services outlive the sources: what a last publish handed them
        # is still theirs to finish when the relay stops.
        async with AsyncExitStack() as services:
            try:
                for service in self._services:
                    await services.enter_async_context(service)
            except Exception as exc:
                logger.exception("a service of the relay failed to start")
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            async with anyio.create_task_group() as tasks:
                try:
                    await self._start(tasks)
                except Exception as exc:
                    logger.exception("the relay failed to start")
                    await send({"type": "lifespan.startup.failed",
                                "message": repr(exc)})
                    tasks.cancel_scope.cancel()
                    return
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await self.shutdown()
                tasks.cancel_scope.cancel()
        await send({"type": "lifespan.shutdown.complete"})

    async def _start(self, tasks: TaskGroup) -> None:
        attempted = []
        for source in self._sources:
            event = anyio.Event()
            attempted.append(event)
            feed = self._feeds[source.sdk_key]
            tasks.start_soon(self._run_source, source, feed, event.set,
                             name=f"flagstaff relay {source.kind} {feed.label}")
        with anyio.move_on_after(self._init_wait):
            for event in attempted:
                await event.wait()
        loaded = sum(1 for feed in self._feeds.values() if feed.version is not None)
        logger.info(
            "relay started: %d of %d configs loaded, at most %d held requests, "
            "admin endpoint %s", loaded, len(self._feeds), self._max_held,
            "on" if self._admin_token is not None else "off",
        )

    async def _run_source(
        self, source: Source, feed: Feed, attempted: Callable
    ) -> None:
        delay = 1.0
        while True:
            try:
                await source.run(feed, attempted)
                return
            except Exception:
                logger.exception("the %s source of %s died: restarting it in %.0f s",
                                 source.kind, feed.label, delay)
            attempted()
            await anyio.sleep(delay)
            delay = min(2 * delay, 60.0)

    # -- HTTP -------------------------------------------------------------------

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        if len(scope.get("raw_path") or scope["path"].encode()) > self._max_path:
            return await self._error(send, 414, "the path is too long")
        if_none_match = prefer = authorization = length = None
        size = 0
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            # A repeated If-None-Match or Prefer is one list (RFC 9110).
            if name == b"if-none-match":
                if_none_match = _joined(if_none_match, value)
            elif name == b"prefer":
                prefer = _joined(prefer, value)
            elif name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
        if size > self._max_header_bytes:
            return await self._error(send, 431, "the request headers are too large")
        if self._closing:
            return await self._unavailable(send, "the relay is shutting down",
                                           close=True)
        if self._open > self._max_requests:
            return await self._unavailable(send, "the relay is overloaded")

        method = scope["method"]
        path = scope["path"]
        if path.startswith(_CONFIG_HEAD) and path.endswith(_CONFIG_TAIL):
            if method not in ("GET", "HEAD"):
                return await self._error(send, 405, "method not allowed",
                                         [(b"allow", b"GET, HEAD")])
            feed = self._feeds.get(path[len(_CONFIG_HEAD):-len(_CONFIG_TAIL)])
            if feed is None:
                return await self._error(send, 404, "not found")
            try:
                if await self._body(receive, _MAX_GET_BODY) is None:
                    return await self._error(send, 413, "a GET carries no body",
                                             [_CLOSE])
            except TimeoutError:
                return await self._error(send, 408, "the body took too long", [_CLOSE])
            return await self._config(receive, send, feed, method == "HEAD",
                                      if_none_match, prefer)
        if path.startswith(_ADMIN_HEAD):
            return await self._admin(receive, send, method, path[len(_ADMIN_HEAD):],
                                     authorization, length)
        if path == _HEALTH and method in ("GET", "HEAD"):
            health = self.health()
            status = 200 if health["status"] == "ok" else 503
            body = _encode(health)
            headers = [*_JSON, (b"content-length", str(len(body)).encode())]
            if method == "HEAD":
                body = b""
            return await _respond(send, status, headers, body)
        return await self._error(send, 404, "not found")

    async def _config(
        self,
        receive: Callable,
        send: Callable,
        feed: Feed,
        head: bool,
        if_none_match: Optional[bytes],
        prefer: Optional[bytes],
    ) -> None:
        version = feed.version
        if version is None:
            return await self._unavailable(send, "the config is not loaded yet")
        wait = _prefer_wait(prefer) if prefer is not None else None
        applied = []
        if wait is not None:
            wait = min(wait, self._max_wait)
            applied.append((b"preference-applied", f"wait={wait:g}".encode()))

        if not _matches(if_none_match, version.tag):
            return await self._ok(send, feed, version, applied, head)
        if wait is None:
            return await _respond(send, 304, version.not_modified_headers)
        if self._held >= self._max_held:
            retry = (b"retry-after", self._retry_after_value())
            return await _respond(send, 304, [*version.not_modified_headers, retry])

        self._held += 1
        feed.held += 1
        try:
            await self._hold(receive, send, feed, head, if_none_match, wait, applied)
        finally:
            self._held -= 1
            feed.held -= 1
            if not self._held and self._drained is not None:
                self._drained.set()

    async def _hold(
        self,
        receive: Callable,
        send: Callable,
        feed: Feed,
        head: bool,
        if_none_match: Optional[bytes],
        wait: float,
        applied: list,
    ) -> None:
        deadline = anyio.current_time() + wait + random.uniform(0, wait / 16)
        while True:
            # Reading the version and joining its waiters happen with no
            # await in between, so that no publish can slip past unseen.
            version = feed.version
            assert version is not None
            if not _matches(if_none_match, version.tag):
                return await self._ok(send, feed, version, applied, head)
            if self._closing or anyio.current_time() >= deadline:
                extra = [_CLOSE] if self._closing else []
                headers = [*version.not_modified_headers, *applied, *extra]
                return await _respond(send, 304, headers)
            with anyio.CancelScope(deadline=deadline) as waiting:
                waiters = feed.waiters
                waiters.add(waiting)
                try:
                    message = await receive()
                finally:
                    waiters.discard(waiting)
                if message["type"] == "http.disconnect":
                    return
                # A server whose receive() does not block until the client
                # goes: hold on without watching for a disconnect.
                await anyio.sleep_forever()

    async def _ok(
        self, send: Callable, feed: Feed, version: Version, applied: list, head: bool
    ) -> None:
        headers = [*version.ok_headers, *applied] if applied else version.ok_headers
        body = b"" if head else version.body
        if len(body) <= _SMALL_BODY:
            # The server writes it without waiting for the client to read (as
            # long as the client reads its answers at all): a deadline would
            # only cost time, a timer per answer, when a publish wakes many.
            return await _respond(send, 200, headers, body)
        with anyio.move_on_after(self._send_timeout) as sending:
            await _respond(send, 200, headers, body)
        if sending.cancelled_caught:
            logger.debug("a client of %s took no config in %.0f s", feed.label,
                         self._send_timeout)

    async def _admin(
        self,
        receive: Callable,
        send: Callable,
        method: str,
        sdk_key: str,
        authorization: Optional[bytes],
        length: Optional[bytes],
    ) -> None:
        token = self._admin_token
        if token is None:
            return await self._error(send, 404, "not found")
        if authorization is None:
            challenge = (b"www-authenticate", b'Bearer realm="flagstaff-relay"')
            return await self._error(send, 401, "an admin token is required",
                                     [challenge])
        scheme, _, given = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), token):
            logger.warning("admin request refused: wrong token")
            return await self._error(send, 403, "the admin token is wrong")
        if method != "PUT":
            return await self._error(send, 405, "method not allowed",
                                     [(b"allow", b"PUT")])
        if not _ADMIN_KEY.fullmatch(sdk_key):
            return await self._error(send, 400, "not an SDK key")
        label = redact(sdk_key)
        feed = self._feeds.get(sdk_key)
        if feed is not None and feed.source != "admin":
            message = f"this config comes from its {feed.source} source"
            return await self._error(send, 409, message)
        if feed is None and self._admin_configs >= self._max_admin_configs:
            return await self._error(send, 409, "the relay serves as many admin "
                                     "configs as it may")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            return await self._error(send, 413, "the config is too large")
        try:
            raw = await self._body(receive, self._max_body)
        except TimeoutError:
            return await self._error(send, 408, "the body took too long", [_CLOSE])
        if raw is None:
            return await self._error(send, 413, "the config is too large", [_CLOSE])

        try:
            changed = self.publish(sdk_key, raw)
        except ConfigError as exc:
            logger.warning("admin config for %s refused, the relay keeps serving the "
                           "one it has: %s", label, exc)
            return await self._error(send, 400, f"not a config_v6 document: {exc}")
        version = self._feeds[sdk_key].version
        assert version is not None
        body = _encode({"etag": version.etag, "changed": changed})
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await _respond(send, 200, headers, body)

    async def _body(self, receive: Callable, limit: int) -> Optional[bytes]:
        """The request body; None past `limit` bytes; TimeoutError if slow."""
        chunks = []
        size = 0
        with anyio.fail_after(self._body_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Gone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

    async def _error(
        self, send: Callable, status: int, message: str, extra: Iterable = ()
    ) -> None:
        body = _encode({"error": message})
        headers = [*_JSON, (b"content-length", str(len(body)).encode()), *extra]
        await _respond(send, status, headers, body)

    async def _unavailable(
        self, send: Callable, message: str, close: bool = False
    ) -> None:
        extra = [(b"retry-after", self._retry_after_value())]
        if close:
            extra.append(_CLOSE)
        await self._error(send, 503, message, extra)

    def _retry_after_value(self) -> bytes:
        seconds = self._retry_after * random.uniform(0.5, 1.5)
        return str(max(1, round(seconds))).encode()


async def _respond(
    send: Callable, status: int, headers: list, body: bytes = b""
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _joined(first: Optional[bytes], more: bytes) -> bytes:
    return more if first is None else first + b"," + more


def _prefer_wait(prefer: bytes) -> Optional[float]:
    """The seconds of a ``wait`` preference (RFC 7240), or None."""
    for preference in prefer.split(b","):
        name, _, value = preference.partition(b"=")
        if name.strip().lower() != b"wait":
            continue
        text = value.split(b";", 1)[0].strip().strip(b'"')
        try:
            seconds = float(text.decode("ascii"))
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


def _matches(if_none_match: Optional[bytes], etag: bytes) -> bool:
    """Whether ``If-None-Match`` names `etag` (weak comparison, RFC 9110)."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(b","):
        tag = tag.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False


def create_app(
    *,
    files: Optional[Mapping[str, Union[str, os.PathLike]]] = None,
    sdk_keys: Iterable[str] = (),
    base_url: Optional[str] = None,
    data_governance: DataGovernance = DataGovernance.GLOBAL,
    poll_interval: float = 60.0,
    admin_token: Optional[str] = None,
    **options: Any,
) -> Relay:
    """
    A relay serving local files and configs from ConfigCat's CDN.

    :param files: SDK key -> path of a config_v6 file, watched for changes.
    :param sdk_keys: SDK keys whose configs come from ConfigCat's CDN, or
        from `base_url`, polled every `poll_interval` seconds.
    :param admin_token: enables ``PUT /admin/configs/{sdk_key}``.
    :param options: the limits and hooks of :class:`Relay` (``max_held``,
        ``on_flags_changed`` and others).
    :raises ValueError: for a bad limit, or a key given twice.
    """
    sources: list[Source] = [
        FileSource(key, path) for key, path in (files or {}).items()
    ]
    sources += [
        CDNSource(key, base_url=base_url, data_governance=data_governance,
                  interval=poll_interval)
        for key in sdk_keys
    ]
    return Relay(sources, admin_token=admin_token, **options)
