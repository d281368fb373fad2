"""
uvicorn's httptools protocol with a bound on the request head.

httptools parses about twice as fast as h11, which is what a publish that
wakes thousands of held requests spends most of its time in, but uvicorn
does not bound the request line and headers it buffers with it (it does
with h11). This protocol closes a connection whose request head grows past
the bound before it is complete.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ("BoundedHttpToolsProtocol",)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """
    :class:`HttpToolsProtocol` that answers ``431`` and closes the
    connection when a request head (request line and headers) passes
    ``max_head`` bytes.
    """

    #: set by the server before it serves
    max_head = 16 * 1024

    _in_head = False
    _head_bytes = 0

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head:
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head and not self.transport.is_closing():
            self.logger.warning("a request head passed %d bytes: connection closed",
                                self.max_head)
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                 b"content-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()
