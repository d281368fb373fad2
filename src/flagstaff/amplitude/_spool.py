"""
The spool file: events that could not be delivered in time, kept on disk
for the next emitter.

One event per line, as the JSON object that was (or would have been) sent,
insert id included, so a resent event that Amplitude already has is
dropped there as a duplicate. An emitter takes the whole file when it opens
(by renaming it first, so that two processes never send the same lines) and
appends to it when it gives up on events.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Union

__all__ = ("Spool",)


class Spool:
    """
    An append-only file of at most ``max_bytes`` bytes. The methods do
    blocking file I/O: call them from a worker thread, or with small writes.
    """

    def __init__(self, path: Union[str, os.PathLike[str]], max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        try:
            self.size = self.path.stat().st_size
        except OSError:
            self.size = 0

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r}, size={self.size})"

    def room(self, nbytes: int) -> bool:
        """
        Whether ``nbytes`` more bytes fit.
        """
        return self.size + nbytes <= self.max_bytes

    def append(self, lines: Iterable[bytes]) -> int:
        """
        Appends the lines (each one event, without a newline); returns the
        bytes written.

        :raises OSError: when the file cannot be written.
        """
        data = b"".join(line + b"\n" for line in lines)
        if not data:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write call in append mode: concurrent writers do not interleave
        # inside a line on a local file system.
        with open(self.path, "ab") as file:
            file.write(data)
        self.size += len(data)
        return len(data)

    def claim(self) -> list[bytes]:
        """
        Takes every line of the file and removes it; [] when there is none.

        :raises OSError: when the file exists but cannot be read.
        """
        claimed = self.path.with_name(
            f"{self.path.name}.{os.getpid()}-{secrets.token_hex(4)}.claimed"
        )
        try:
            os.replace(self.path, claimed)
        except FileNotFoundError:
            self.size = 0
            return []
        # A file that cannot be read stays where it is, under its new name,
        # for someone to look at; it is never deleted unread.
        data = claimed.read_bytes()
        claimed.unlink(missing_ok=True)
        try:
            self.size = self.path.stat().st_size
        except OSError:
            self.size = 0
        return [line for line in data.split(b"\n") if line.strip()]
