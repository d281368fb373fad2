"""
The demo's servers on 127.0.0.1: each under uvicorn in a thread of its own,
with its own event loop, as a separate process would run it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

__all__ = ("HOST", "serve")

HOST = "127.0.0.1"


@contextmanager
def serve(
    app: Any,
    name: str,
    *,
    server_class: Optional[type] = None,
    config_for: Optional[Callable[[int], Any]] = None,
) -> Iterator[str]:
    """
    Serves the ASGI `app` on a free port of 127.0.0.1 until the block ends,
    and yields its base URL.

    :param server_class: uvicorn's server (default) or a subclass of it.
    :param config_for: makes the server's settings for the port chosen
        (default: quiet, no lifespan, the asyncio loop).
    :raises RuntimeError: when the server does not start within 10 s.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Answers go out as two writes (head, body): without this the body would
    # wait about 40 ms for the client's delayed ACK of the head.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    if config_for is None:
        config = uvicorn.Config(app, host=HOST, port=port, log_level="warning",
                                log_config=None, lifespan="off", access_log=False,
                                loop="asyncio")
    else:
        config = config_for(port)
    server = (server_class or uvicorn.Server)(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"flagstaff-demo-{name}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10.0
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the demo's {name} did not start on port {port}")
            time.sleep(0.005)
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
