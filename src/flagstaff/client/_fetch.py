"""
ConfigCat's CDN protocol: the config URL of an SDK key, ETags, and the
redirects a config's preferences ask for.
"""

from __future__ import annotations

import enum
import logging
import re
import sys
from dataclasses import dataclass
from typing import Optional

import httpx

from .._errors import ConfigError
from ..config import ConfigModel, decode_config

__all__ = ("DataGovernance", "FetchOutcome", "FetchResult", "Fetcher", "check_sdk_key")

logger = logging.getLogger("flagstaff.client")

_SDK_KEY = re.compile(r"^(configcat-sdk-1/)?[^/]{22}/[^/]{22}$")
_PROXY_KEY = re.compile(r"^configcat-proxy/.+$")
_MAX_REDIRECTS = 2


class DataGovernance(enum.Enum):
    """
    Where ConfigCat's CDN keeps the config: worldwide, or in the EU only.
    """

    GLOBAL = "https://cdn-global.configcat.com"
    EU_ONLY = "https://cdn-eu.configcat.com"


def check_sdk_key(sdk_key: str, custom_base_url: bool) -> None:
    """
    :raises ValueError: when `sdk_key` is not in one of ConfigCat's formats.
    """
    if _SDK_KEY.match(sdk_key) or (custom_base_url and _PROXY_KEY.match(sdk_key)):
        return
    raise ValueError(
        f"SDK key {redact(sdk_key)!r} is not in ConfigCat's format "
        "('configcat-sdk-1/<22 characters>/<22 characters>', the legacy "
        "'<22>/<22>', or 'configcat-proxy/...' with a base_url)"
    )


def redact(secret: str) -> str:
    """
    A key as log lines may show it: its last few characters.
    """
    return f"...{secret[-6:]}" if len(secret) > 12 else "***"


class FetchOutcome(enum.Enum):
    FETCHED = "fetched"             # a new config
    NOT_MODIFIED = "not modified"   # 304: the config held is current
    FAILED = "failed"


@dataclass(frozen=True)
class FetchResult:
    outcome: FetchOutcome
    text: Optional[str] = None
    model: Optional[ConfigModel] = None
    etag: str = ""
    error: Optional[str] = None
    #: False for errors that retrying soon will not fix (a wrong SDK key)
    transient: bool = True
    #: the server held the request (it answered ``Preference-Applied``)
    held: bool = False
    #: seconds the server asked to wait before the next request
    retry_after: Optional[float] = None


class Fetcher:
    """
    Downloads one SDK key's config from ConfigCat's CDN (or a server that
    speaks its protocol), following the redirects of the config's `p`.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        sdk_key: str,
        base_url: Optional[str],
        data_governance: DataGovernance,
        mode_code: str,
        version: str,
    ) -> None:
        self._http = http
        self._sdk_key = sdk_key
        self._custom_base_url = base_url is not None
        self.base_url = (base_url or data_governance.value).rstrip("/")
        agent = f"flagstaff-Python/{mode_code}-{version}"
        self._headers = {
            "User-Agent": agent,
            "X-ConfigCat-UserAgent": agent,
            "X-ConfigCat-PythonVersion": "%d.%d.%d" % sys.version_info[:3],
        }

    def _url(self) -> str:
        return f"{self.base_url}/configuration-files/{self._sdk_key}/config_v6.json"

    async def fetch(self, etag: Optional[str], wait: Optional[float] = None) -> FetchResult:
        """
        One download, with the redirects it leads to (at most two).

        :param etag: the ETag of the config held, if any.
        :param wait: ask a long-poll server to hold the request this many
            seconds until the config changes (``Prefer: wait``); the read
            timeout then grows to cover the hold.

        Cancelling it is safe: nothing is changed until it returns.
        """
        result = FetchResult(FetchOutcome.FAILED, error="no request was made")
        for _ in range(_MAX_REDIRECTS + 1):
            result = await self._fetch_once(etag, wait)
            if result.outcome is not FetchOutcome.FETCHED:
                return result
            assert result.model is not None
            preferences = result.model.preferences
            target = (preferences.u or "").rstrip("/")
            mode = preferences.r
            if not target or target == self.base_url:
                return result
            # An explicit base URL (a proxy, a relay) wins unless forced.
            if self._custom_base_url and mode != 2:
                return result
            self.base_url = target
            if mode not in (1, 2):
                return result
            if mode == 1:
                logger.warning(
                    "the config asks for another data governance (%s): set "
                    "data_governance to match it to save a redirect", target
                )
        logger.error("config redirect loop: stopped at %s", self.base_url)
        return FetchResult(
            result.outcome, result.text, result.model, result.etag,
            error="Redirection loop encountered while trying to fetch config JSON.",
            held=result.held, retry_after=result.retry_after,
        )

    async def _fetch_once(self, etag: Optional[str], wait: Optional[float]) -> FetchResult:
        headers = dict(self._headers)
        if etag:
            headers["If-None-Match"] = etag
        extra = {}
        if wait is not None:
            headers["Prefer"] = f"wait={wait:g}"
            hold = httpx.Timeout(1.5 * wait + 5, connect=self._http.timeout.connect)
            extra["timeout"] = hold
        try:
            response = await self._http.get(self._url(), headers=headers, **extra)
        except httpx.TimeoutException as exc:
            return FetchResult(FetchOutcome.FAILED, error=f"timed out: {exc!r}")
        except httpx.HTTPError as exc:
            return FetchResult(FetchOutcome.FAILED, error=f"network error: {exc!r}")

        status = response.status_code
        held = wait is not None and "preference-applied" in response.headers
        retry_after = _seconds(response.headers.get("Retry-After"))
        if status == 304:
            return FetchResult(FetchOutcome.NOT_MODIFIED, etag=etag or "", held=held,
                               retry_after=retry_after)
        if status in (403, 404):
            return FetchResult(
                FetchOutcome.FAILED, transient=False,
                error=f"the CDN answered {status}: the SDK key "
                      f"{redact(self._sdk_key)!r} is wrong, or its config was deleted",
            )
        if not 200 <= status < 300:
            return FetchResult(FetchOutcome.FAILED, error=f"the CDN answered {status}",
                               retry_after=retry_after)
        text = response.text
        try:
            model = decode_config(text)
        except ConfigError as exc:
            return FetchResult(FetchOutcome.FAILED, error=f"the CDN sent a bad config: {exc}")
        return FetchResult(
            FetchOutcome.FETCHED, text, model, response.headers.get("ETag", ""),
            held=held, retry_after=retry_after,
        )


def _seconds(retry_after: Optional[str]) -> Optional[float]:
    """A ``Retry-After`` in seconds (HTTP dates are not used by flagstaff)."""
    if retry_after is None:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        return None
