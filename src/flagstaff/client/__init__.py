"""
The delivery layer: the async client, ConfigCat's CDN protocol, polling
modes and caches.
"""

from ._cache import ConfigCache, FileCache, MemoryCache, cache_key
from ._client import Client, ClientClosedError, RefreshResult, Snapshot
from ._fetch import DataGovernance
from ._polling import AutoPoll, LazyLoad, LongPoll, ManualPoll

__all__ = (
    "AutoPoll",
    "Client",
    "ClientClosedError",
    "ConfigCache",
    "DataGovernance",
    "FileCache",
    "LazyLoad",
    "LongPoll",
    "ManualPoll",
    "MemoryCache",
    "RefreshResult",
    "Snapshot",
    "cache_key",
)
