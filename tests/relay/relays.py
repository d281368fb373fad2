"""
Relays under uvicorn on 127.0.0.1, each in a background thread with its own
asyncio loop (so that the same relay serves tests under asyncio and trio),
run by the same server class and settings as ``flagstaff relay``. The
environment variable FLAGSTAFF_TEST_RELAY_HTTP picks uvicorn's parser (h11,
httptools; by default auto).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

import anyio
import httpx

from cdn import HOST, ONBOARDING_KEY, ONBOARDING_TEXT, with_default
from flagstaff.relay import Relay
from flagstaff.relay._server import RelayServer, server_config

TOKEN = "relay-test-token-0123456789abcdef"
KEY = ONBOARDING_KEY
#: the example config, and the same with another served value
FIRST = ONBOARDING_TEXT
SECOND = with_default(ONBOARDING_TEXT, "premiumBadge", True)
THIRD = with_default(ONBOARDING_TEXT, "onboardingFeature", "feature3")


@dataclasses.dataclass
class Running:
    """
    A relay serving on 127.0.0.1: its base URL, the relay and its server.
    """

    url: str
    relay: Relay
    server: RelayServer
    port: int

    def config_url(self, sdk_key: str = KEY) -> str:
        return f"{self.url}/configuration-files/{sdk_key}/config_v6.json"

    def admin_url(self, sdk_key: str = KEY) -> str:
        return f"{self.url}/admin/configs/{sdk_key}"

    def stop(self) -> None:
        """Asks the server to shut down gracefully (it answers held requests)."""
        self.server.should_exit = True


@contextmanager
def run_relay(
    relay: Relay, start_timeout: float = 10.0, **options: Any
) -> Iterator[Running]:
    """
    Runs `relay` until the block ends.

    :raises RuntimeError: when the server does not start in `start_timeout`.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    # No log_config: the test process keeps its logging (and caplog) as it is.
    settings = {"shutdown_timeout": 2, "log_level": "warning", "log_config": None,
                "http": os.environ.get("FLAGSTAFF_TEST_RELAY_HTTP", "auto"),
                "loop": "asyncio", **options}
    server = RelayServer(server_config(relay, HOST, port, **settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"relay-{port}")
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the relay did not start on port {port}")
            time.sleep(0.01)
        yield Running(f"http://{HOST}:{port}", relay, server, port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "the relay did not stop"


async def put(
    http: httpx.AsyncClient, running: Running, text: str | bytes,
    sdk_key: str = KEY, token: Optional[str] = TOKEN,
) -> httpx.Response:
    """Publishes through the admin endpoint."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await http.put(running.admin_url(sdk_key), content=text, headers=headers)


def first_error(running: Running) -> str:
    """The error of the relay's first config, or an empty string."""
    return running.relay.health()["configs"][0]["error"] or ""


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """
    Waits until `predicate` is true.

    :raises TimeoutError: when it is still false after `timeout` seconds.
    """
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)
