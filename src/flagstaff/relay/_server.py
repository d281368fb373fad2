"""
The relay under uvicorn: the server settings it needs, and a graceful
shutdown that answers every held request before uvicorn waits for the
connections to go. Also a runner of any ASGI app under uvicorn on
127.0.0.1 in a thread of its own (the demo's servers, the test plugin's CDN).
"""

from __future__ import annotations

import copy
import importlib.util
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from ._app import Relay

__all__ = ("LOOPBACK", "RelayServer", "http_protocol", "serve_in_thread",
           "server_config")

LOOPBACK = "127.0.0.1"

#: the most bytes of a request line and headers that uvicorn buffers
MAX_INCOMPLETE_EVENT = 16 * 1024


class RelayServer(uvicorn.Server):
    """
    A uvicorn server for a :class:`Relay`. uvicorn sends the lifespan's
    shutdown only after every request is over, which for a held request may
    be 55 s away; this server first stops listening and answers the held
    requests (their ``304``), then shuts down as uvicorn does.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        if not isinstance(config.app, Relay):
            raise TypeError("a RelayServer serves a flagstaff.relay.Relay")
        super().__init__(config)
        self.relay: Relay = config.app

    async def startup(self, sockets: Optional[list[socket.socket]] = None) -> None:
        await super().startup(sockets)
        # An answer goes out as two writes, its head and its body. Under
        # Nagle's algorithm the body would wait for the client's delayed ACK
        # of the head, about 40 ms on Linux, on every answer to a held
        # request. The connections accepted inherit the listener's setting.
        for server in self.servers:
            for listener in server.sockets:
                if listener.family in (socket.AF_INET, socket.AF_INET6):
                    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def shutdown(self, sockets: Optional[list[socket.socket]] = None) -> None:
        for server in self.servers:
            server.close()
        await self.relay.shutdown()
        await super().shutdown(sockets)


def http_protocol(http: str = "auto") -> Any:
    """
    The HTTP protocol of uvicorn to serve with, bounded on the request head:
    ``"h11"``, or httptools (about twice as fast) when `http` is
    ``"httptools"``, or ``"auto"`` and httptools is installed.

    :raises ValueError: for ``"httptools"`` when it is not installed.
    """
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if http == "h11":
        return "h11"
    if http != "httptools":
        raise ValueError(f"no HTTP protocol {http!r}: h11, httptools or auto")
    try:
        from ._httptools import BoundedHttpToolsProtocol
    except ImportError as exc:
        raise ValueError(f"httptools is not installed: pip install httptools ({exc})"
                         ) from exc

    BoundedHttpToolsProtocol.max_head = MAX_INCOMPLETE_EVENT
    return BoundedHttpToolsProtocol


def server_config(
    relay: Relay,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    http: str = "auto",
    shutdown_timeout: int = 10,
    log_level: str = "info",
    **options: Any,
) -> uvicorn.Config:
    """
    The uvicorn settings of a relay: a bound on the request head, no access
    log (its lines would carry SDK keys in full), flagstaff's log lines
    beside uvicorn's, and the lifespan on to run the sources.

    :param http: ``"h11"``, ``"httptools"`` or ``"auto"``, as in
        :func:`http_protocol`.
    :param options: further ``uvicorn.Config`` settings, which win.
    """
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["flagstaff"] = {
        "handlers": ["default"], "level": log_level.upper(), "propagate": False,
    }
    # httpx logs each request's URL at INFO, and a config URL holds its SDK key.
    log_config["loggers"]["httpx"] = {"level": "WARNING"}
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "lifespan": "on",
        "log_level": log_level,
        "log_config": log_config,
        "access_log": False,
        "http": http_protocol(http),
        "ws": "none",
        "h11_max_incomplete_event_size": MAX_INCOMPLETE_EVENT,
        "server_header": False,
        "proxy_headers": False,
        # Long-poll clients ask again at once, or after their token bucket's
        # delay of about 15 s: keep their connections across it.
        "timeout_keep_alive": 20,
        "timeout_graceful_shutdown": shutdown_timeout,
    }
    settings.update(options)
    return uvicorn.Config(relay, **settings)


@contextmanager
def serve_in_thread(
    app: Any,
    name: str,
    *,
    server_class: type = uvicorn.Server,
    config_for: Optional[Callable[[int], uvicorn.Config]] = None,
    start_timeout: float = 10.0,
) -> Iterator[str]:
    """
    Serves the ASGI `app` on a free port of 127.0.0.1, in a thread with its
    own event loop (as a separate process would), until the block ends, and
    yields its base URL.

    :param name: names the thread, and the server in errors.
    :param server_class: uvicorn's server or a subclass of it.
    :param config_for: makes the server's settings for the port chosen
        (default: h11, no lifespan, no log lines below WARNING, and the
        caller's logging left as it is).
    :raises RuntimeError: when the server does not start in `start_timeout`.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Answers go out as two writes (head, body): without this the body would
    # wait about 40 ms for the client's delayed ACK of the head.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    if config_for is None:
        config = uvicorn.Config(
            app, host=LOOPBACK, port=port, log_level="warning", log_config=None,
            lifespan="off", loop="asyncio", http="h11", ws="none",
            access_log=False, timeout_graceful_shutdown=1)
    else:
        config = config_for(port)
    server = server_class(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"flagstaff-{name}-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} did not start on port {port}")
            time.sleep(0.005)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
