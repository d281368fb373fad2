"""
Fixtures of the client's integration tests: two fake CDNs on 127.0.0.1,
emptied for every test, and a recorder of the client's hooks (the fake
chart annotation API is the root conftest's).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from cdn import HOST, FakeCDN, Hooks, Server, serve


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _only_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Refuses to resolve any host but 127.0.0.1, so that no test reaches
    ConfigCat's real CDN (or anything else) by mistake, and fails the test
    that tried.
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
    assert not tried, f"a client tried to reach {tried}"


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[Server, Server]]:
    """
    Two fake CDNs, each on its own port, for the whole session.
    """
    with serve(FakeCDN()) as first, serve(FakeCDN()) as second:
        yield first, second


def _fresh(server: Server) -> Iterator[Server]:
    server.app.reset()
    yield server
    server.app.reset()


@pytest.fixture
def cdn(servers: tuple[Server, Server]) -> Iterator[Server]:
    """
    The first fake CDN, emptied for this test.
    """
    yield from _fresh(servers[0])


@pytest.fixture
def cdn2(servers: tuple[Server, Server]) -> Iterator[Server]:
    """
    The second fake CDN (another base URL), emptied for this test.
    """
    yield from _fresh(servers[1])


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()

