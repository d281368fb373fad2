"""
Config caches, in the format ConfigCat's SDKs share: one cache can serve
flagstaff and ConfigCat's SDKs side by side.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Optional, Protocol

import anyio

__all__ = ("CacheEntry", "ConfigCache", "FileCache", "MemoryCache", "cache_key")


class ConfigCache(Protocol):
    """
    Where the client keeps the last downloaded config: strings by key.
    """

    async def get(self, key: str) -> Optional[str]: ...

    async def set(self, key: str, value: str) -> None: ...


def cache_key(sdk_key: str) -> str:
    """
    The key ConfigCat's SDKs store an SDK key's config under.
    """
    return hashlib.sha1(f"{sdk_key}_config_v6.json_v2".encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """
    A downloaded config: when (Unix milliseconds), its ETag, and its text
    exactly as downloaded.
    """

    fetch_time_ms: int
    etag: str
    text: str

    def serialize(self) -> str:
        return f"{self.fetch_time_ms}\n{self.etag}\n{self.text}"

    @classmethod
    def parse(cls, value: str) -> Optional["CacheEntry"]:
        """
        The entry stored in `value`, or None when it is not one.
        """
        parts = value.split("\n", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1]:
            return None
        return cls(int(parts[0]), parts[1], parts[2])


class MemoryCache:
    """
    A cache in this process's memory.
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    async def get(self, key: str) -> Optional[str]:
        return self._values.get(key)

    async def set(self, key: str, value: str) -> None:
        self._values[key] = value


class FileCache:
    """
    A cache in a directory: one file per key, named by the key, holding the
    entry. Writes are atomic; the disk is used from a worker thread so that
    the event loop never waits on it.
    """

    def __init__(self, directory: "os.PathLike[str] | str") -> None:
        self.directory = os.fspath(directory)

    async def get(self, key: str) -> Optional[str]:
        return await anyio.to_thread.run_sync(self._read, key)

    async def set(self, key: str, value: str) -> None:
        await anyio.to_thread.run_sync(self._write, key, value)

    def _read(self, key: str) -> Optional[str]:
        try:
            with open(os.path.join(self.directory, key), encoding="utf-8") as file:
                return file.read()
        except FileNotFoundError:
            return None

    def _write(self, key: str, value: str) -> None:
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, key)
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w", encoding="utf-8") as file:
            file.write(value)
        os.replace(partial, path)
