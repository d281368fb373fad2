"""
The client-side dedup filters: bounded, least-recently-used caches whose
entries expire a fixed time after they were made.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ("ExpiringLRU",)


class ExpiringLRU:
    """
    At most ``capacity`` keys, each forgotten ``ttl`` seconds after it was
    admitted (an absolute expiry: seeing a key again does not extend it, so
    a user evaluated all day long is exposed again the next day).

    When full, the least recently seen key goes first. Not thread-safe: it
    belongs to one event loop.
    """

    __slots__ = ("_entries", "capacity", "ttl")

    def __init__(self, capacity: int = 65_536, ttl: float = 86_400.0) -> None:
        if capacity < 1 or ttl <= 0:
            raise ValueError("a dedup cache needs a capacity >= 1 and a ttl > 0")
        self.capacity = capacity
        self.ttl = ttl
        # key -> (expiry, value)
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def admit(self, key: Hashable, now: float) -> bool:
        """
        True when ``key`` is new (or expired) at ``now``, and remembers it;
        False when it was seen within the ttl.
        """
        entries = self._entries
        entry = entries.get(key)
        if entry is not None and entry[0] > now:
            entries.move_to_end(key)
            return False
        self._put(key, (now + self.ttl, None))
        return True

    def changed(self, key: Hashable, value: Any, now: float) -> bool:
        """
        True when ``key`` is new, expired, or was last seen with another
        ``value``; then remembers ``value`` for a fresh ttl.
        """
        entries = self._entries
        entry = entries.get(key)
        if entry is not None and entry[0] > now and entry[1] == value:
            entries.move_to_end(key)
            return False
        self._put(key, (now + self.ttl, value))
        return True

    def forget(self, key: Hashable) -> None:
        """
        Drops ``key``, so that it is admitted again.
        """
        self._entries.pop(key, None)

    def _put(self, key: Hashable, entry: tuple[float, Any]) -> None:
        entries = self._entries
        entries[key] = entry
        entries.move_to_end(key)
        if len(entries) > self.capacity:
            entries.popitem(last=False)
