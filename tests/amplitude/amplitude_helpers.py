"""
Helpers of the emitter's tests: an outcome recorder and small waits.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio


class Outcomes:
    """
    Records every ``on_outcome`` call: ``outcomes.callback`` plugs in.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[dict, object, object]] = []

    def callback(self, event: dict, outcome: object, reason: object) -> None:
        self.calls.append((event, outcome, reason))

    def ids(self, outcome: object = None, reason: object = None) -> list[str]:
        return [
            event.get("insert_id") for event, o, r in self.calls
            if (outcome is None or o is outcome) and (reason is None or r is reason)
        ]

    def reasons(self) -> Counter:
        return Counter(getattr(r, "value", r) for _, _, r in self.calls)

    def by_id(self) -> Counter:
        """How many outcomes each insert id got (1, if all is well)."""
        return Counter(event.get("insert_id") for event, _, _ in self.calls)


def accounted(stats) -> bool:
    """
    Every event counted once: delivered, dropped, spooled or pending.
    """
    return stats.submitted == (
        stats.delivered + stats.dropped + stats.spooled + stats.pending
    )


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, step: float = 0.005
) -> float:
    """
    Polls ``predicate`` until it is true; returns the seconds it took.

    :raises TimeoutError: when it is still false after ``timeout`` seconds.
    """
    start = time.monotonic()
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(step)
    return time.monotonic() - start
