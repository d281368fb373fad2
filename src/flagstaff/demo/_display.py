"""
The demo's progress display: one line redrawn in place on a terminal, a
line per quarter of each stage elsewhere (a CI log, a pipe).
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

__all__ = ("Progress",)

_BAR = 24


class Progress:
    """
    Shows how far each stage of the demo is. Silent when `stream` is None.
    """

    def __init__(self, stream: Optional[TextIO] = sys.stderr) -> None:
        self._stream = stream
        self._live = stream is not None and stream.isatty()
        self._stage = ""
        self._quarter = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def note(self, text: str) -> None:
        """
        Writes one line of its own, such as a step that happened.
        """
        if self._stream is None:
            return
        self._clear()
        elapsed = time.monotonic() - self._started
        self._stream.write(f"[{elapsed:5.1f} s] {text}\n")
        self._stream.flush()

    def update(self, stage: str, done: int, total: int, detail: str = "") -> None:
        """
        Shows that `done` of `total` of `stage` are done.
        """
        if self._stream is None:
            return
        if stage != self._stage:
            self._stage, self._quarter = stage, 0
        share = done / total if total else 1.0
        if self._live:
            now = time.monotonic()
            if done < total and now - self._drawn < 0.05:
                return
            self._drawn = now
            filled = round(share * _BAR)
            bar = "#" * filled + "." * (_BAR - filled)
            line = f"{stage:<12} [{bar}] {done:>7,}/{total:,} {detail}"
            self._stream.write("\r" + line[:150].ljust(150))
            if done >= total:
                self._stream.write("\n")
                self._drawn = 0.0
            self._stream.flush()
            return
        quarter = min(4, int(share * 4))
        if quarter > self._quarter:
            self._quarter = quarter
            self.note(f"{stage}: {done:,}/{total:,} {detail}".rstrip())

    def _clear(self) -> None:
        if self._live and self._drawn:
            self._stream.write("\r" + " " * 150 + "\r")
            self._drawn = 0.0
