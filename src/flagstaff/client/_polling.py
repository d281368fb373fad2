"""
Polling modes: when the client downloads the config.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("AutoPoll", "LazyLoad", "ManualPoll", "PollingMode")


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


PollingMode = (AutoPoll, LazyLoad, ManualPoll)
