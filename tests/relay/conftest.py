"""
Fixtures of the relay's tests: relays on 127.0.0.1 started per test, a fake
CDN for the upstream, a fake of Amplitude's chart annotation API, and both
anyio backends.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

# The fake CDN lives with the client's tests; the relay's tests use it too.
_TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_TESTS / "client"))

from cdn import HOST, FakeCDN, Server, serve  # noqa: E402
from relays import Running, run_relay  # noqa: E402

from flagstaff.relay import Relay, Source  # noqa: E402


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _only_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Refuses to resolve any host but 127.0.0.1, so that no relay polls
    ConfigCat's real CDN by mistake, and fails the test that tried.
    """
    tried: list[str] = []
    resolve = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in (HOST, HOST.encode()):
            tried.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"tests may not resolve {host}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    assert not tried, f"something tried to reach {tried}"


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    """
    Starts relays for this test: ``start(*sources, http=None, **limits)``
    (`http`: uvicorn's parser, by default auto); every one stops when the
    test ends.
    """
    with ExitStack() as stack:
        def start(*sources: Source, http: str | None = None, **limits) -> Running:
            options = {"http": http} if http else {}
            return stack.enter_context(run_relay(Relay(sources, **limits), **options))

        yield start


@pytest.fixture(scope="session")
def _upstreams() -> Iterator[tuple[Server, Server]]:
    with serve(FakeCDN()) as first, serve(FakeCDN()) as second:
        yield first, second


def _fresh(server: Server) -> Iterator[Server]:
    server.app.reset()
    yield server
    server.app.reset()


@pytest.fixture
def upstream(_upstreams: tuple[Server, Server]) -> Iterator[Server]:
    """
    A fake CDN on 127.0.0.1, emptied for this test.
    """
    yield from _fresh(_upstreams[0])


@pytest.fixture
def upstream2(_upstreams: tuple[Server, Server]) -> Iterator[Server]:
    """
    A second fake CDN (another base URL), emptied for this test.
    """
    yield from _fresh(_upstreams[1])

