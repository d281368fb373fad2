"""
Polling modes: when the client downloads the config.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("AutoPoll", "LazyLoad", "LongPoll", "ManualPoll", "PollingMode")


@dataclass(frozen=True)
class AutoPoll:
    """
    A background task downloads the config every `interval` seconds. The
    first evaluations wait for the first download at most `max_init_wait`
    seconds, then serve what is cached (or the caller's defaults).
    """

    interval: float = 60.0
    max_init_wait: float = 5.0

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError(f"AutoPoll interval is at least 1 s, not {self.interval}")
        if self.max_init_wait < 0:
            raise ValueError(f"AutoPoll max_init_wait is negative: {self.max_init_wait}")

    #: the letter ConfigCat's user agent gives the mode
    code = "a"


@dataclass(frozen=True)
class LazyLoad:
    """
    An evaluation downloads the config when the one held is older than `ttl`
    seconds, and waits for it.
    """

    ttl: float = 60.0

    def __post_init__(self) -> None:
        if self.ttl < 1:
            raise ValueError(f"LazyLoad ttl is at least 1 s, not {self.ttl}")

    code = "l"


@dataclass(frozen=True)
class ManualPoll:
    """
    Only :meth:`Client.refresh` downloads the config.
    """

    code = "m"


@dataclass(frozen=True)
class LongPoll:
    """
    The client asks a flagstaff relay to hold each request up to `wait`
    seconds until the config changes, so a change arrives in milliseconds.
    Against a server that does not hold (ConfigCat's CDN) it falls back to
    ETag polling every `poll_interval` seconds, and tries holding again every
    `retry_hold_after` seconds. The first evaluations wait for the first
    config at most `max_init_wait` seconds.
    """

    wait: float = 30.0
    max_init_wait: float = 5.0
    poll_interval: float = 60.0
    retry_hold_after: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.wait <= 55:
            raise ValueError(f"LongPoll wait is 1 to 55 s, not {self.wait}")
        if self.max_init_wait < 0:
            raise ValueError(f"LongPoll max_init_wait is negative: {self.max_init_wait}")
        if self.poll_interval < 1:
            raise ValueError(f"LongPoll poll_interval is at least 1 s, not {self.poll_interval}")

    code = "w"


PollingMode = (AutoPoll, LazyLoad, LongPoll, ManualPoll)
