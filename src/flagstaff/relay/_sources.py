"""
Where a relay's configs come from: ConfigCat's CDN (or any server speaking
its protocol), polled with ETags, and local files, watched.

A source runs as one background task per SDK key. It hands every config it
gets to its :class:`~flagstaff.relay._configs.Feed`, which decodes it first:
a config that does not decode is logged and never replaces the one served.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Callable, Optional, Union

import anyio
import httpx

from .._errors import ConfigError
from .._version import __version__
from ..client._fetch import DataGovernance, FetchOutcome, Fetcher, redact
from ..config import decode_config
from ._configs import Feed

__all__ = ("CDNSource", "FileSource", "Source")

logger = logging.getLogger("flagstaff.relay")


class Source:
    """
    The config of one SDK key, kept current by a background task.

    Subclasses set `kind` and implement :meth:`run`.
    """

    #: how the health page names the source
    kind = "source"

    def __init__(self, sdk_key: str) -> None:
        if not sdk_key:
            raise ValueError("the SDK key is empty")
        self.sdk_key = sdk_key

    async def run(self, feed: Feed, attempted: Callable[[], None]) -> None:
        """
        Keeps `feed` current until cancelled; calls `attempted` once its
        first attempt, good or bad, is over.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact(self.sdk_key)}>"


class CDNSource(Source):
    """
    Polls ConfigCat's CDN for one SDK key: one request with
    ``If-None-Match`` per `interval`, however many clients the relay serves,
    following the redirects of the config's preferences (``p.u``, ``p.r``).
    After a failure it tries again sooner, backing off with full jitter from
    1 s up to `interval`.

    :param sdk_key: the SDK key, as ConfigCat's dashboard shows it.
    :param base_url: a server speaking the CDN protocol (another relay, a
        ConfigCat proxy); by default ConfigCat's CDN for `data_governance`.
    :param data_governance: where ConfigCat keeps the config.
    :param interval: seconds between two polls.
    :param timeout: seconds one poll may take.
    :param http: an ``httpx.AsyncClient`` to poll with, left open; by
        default the source opens its own.
    """

    kind = "cdn"

    def __init__(
        self,
        sdk_key: str,
        *,
        base_url: Optional[str] = None,
        data_governance: DataGovernance = DataGovernance.GLOBAL,
        interval: float = 60.0,
        timeout: float = 20.0,
        http: Optional[httpx.AsyncClient] = None,
    ) -> None:
        super().__init__(sdk_key)
        if interval <= 0:
            raise ValueError(f"the poll interval is not positive: {interval}")
        self.base_url = base_url
        self.data_governance = data_governance
        self.interval = interval
        self.timeout = timeout
        self._http = http

    async def run(self, feed: Feed, attempted: Callable[[], None]) -> None:
        if self._http is not None:
            await self._poll(self._http, feed, attempted)
            return
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            await self._poll(http, feed, attempted)

    async def _poll(
        self, http: httpx.AsyncClient, feed: Feed, attempted: Callable[[], None]
    ) -> None:
        fetcher = Fetcher(http, self.sdk_key, self.base_url, self.data_governance,
                          "r", __version__)
        etag: Optional[str] = None
        failures = 0
        while True:
            result = await fetcher.fetch(etag)
            if result.outcome is FetchOutcome.FAILED:
                failures += 1
                error = (result.error or "unknown error").replace(
                    self.sdk_key, feed.label)
                feed.fail(error)
                logger.warning(
                    "upstream poll for %s failed (%s); the relay keeps serving %s",
                    feed.label, error, _served(feed),
                )
            else:
                failures = 0
                if result.outcome is FetchOutcome.NOT_MODIFIED:
                    feed.confirm()
                    logger.debug("upstream config of %s not modified", feed.label)
                else:
                    assert result.text is not None
                    try:
                        feed.publish(result.text.encode())
                    except ConfigError as exc:  # pragma: no cover - Fetcher decoded it
                        feed.fail(f"the CDN sent a bad config: {exc}")
                    else:
                        etag = result.etag or None
            attempted()
            await anyio.sleep(self._delay(failures))

    def _delay(self, failures: int) -> float:
        if not failures:
            return self.interval
        ceiling = min(self.interval, 2.0 ** (failures - 1))
        return max(min(1.0, self.interval), random.uniform(0, ceiling))


class FileSource(Source):
    """
    Serves a local config_v6 file and watches it: every `interval` seconds
    it looks at the file's modification time, size and inode, and reads it
    again when one changed. A file that is missing or does not decode is
    logged and keeps the config served.

    :param sdk_key: the SDK key that clients ask for.
    :param path: the config file.
    :param interval: seconds between two looks at the file.
    """

    kind = "file"

    def __init__(
        self, sdk_key: str, path: Union[str, os.PathLike], *, interval: float = 1.0
    ) -> None:
        super().__init__(sdk_key)
        if interval <= 0:
            raise ValueError(f"the watch interval is not positive: {interval}")
        self.path = Path(path)
        self.interval = interval

    def check(self) -> None:
        """
        Reads and decodes the file once, for a command to fail early.

        :raises OSError: when the file cannot be read.
        :raises ConfigError: when it is not a config_v6 document.
        """
        decode_config(self.path.read_bytes())

    async def run(self, feed: Feed, attempted: Callable[[], None]) -> None:
        seen: Optional[tuple[int, int, int]] = None
        while True:
            seen = self._look(feed, seen)
            attempted()
            await anyio.sleep(self.interval)

    def _look(
        self, feed: Feed, seen: Optional[tuple[int, int, int]]
    ) -> Optional[tuple[int, int, int]]:
        """Reads the file if it changed; returns what it saw of it."""
        # A stat and a read of a local config take microseconds: they run in
        # the event loop rather than in a worker thread.
        try:
            stat = self.path.stat()
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if signature == seen:
                if feed.error is None:
                    feed.confirm()
                return seen
            raw = self.path.read_bytes()
        except OSError as exc:
            error = f"cannot read {self.path}: {exc.strerror or exc}"
            if error != feed.error:
                logger.warning("config file of %s: %s; the relay keeps serving %s",
                               feed.label, error, _served(feed))
            feed.fail(error)
            return None
        try:
            feed.publish(raw)
        except ConfigError as exc:
            feed.fail(f"{self.path} is not a config: {exc}")
            logger.warning("config file %s of %s does not decode; the relay keeps "
                           "serving %s: %s", self.path, feed.label, _served(feed), exc)
        return signature


def _served(feed: Feed) -> str:
    return "the config it has" if feed.version is not None else "nothing yet"
