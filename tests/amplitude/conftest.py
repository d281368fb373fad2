"""
Fixtures of the emitter's and the annotator's tests: a fake Amplitude and a
fake of its chart annotation API on 127.0.0.1 for the session, emptied for
every test, and a recorder of outcomes.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from amplitude_helpers import Outcomes
from flagstaff.amplitude import AmplitudeEmitter
from fake_amplitude import API_KEY, HOST, FakeAmplitude, Server, serve


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _only_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Refuses to resolve any host but 127.0.0.1, so that no test reaches the
    real Amplitude (or anything else) by mistake, and fails the test that
    tried.
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
    assert not tried, f"an emitter tried to reach {tried}"


@pytest.fixture(autouse=True)
def _no_api_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """
    Every test also checks that no log line carries the API key.
    """
    caplog.set_level(logging.DEBUG, logger="flagstaff.amplitude")
    yield
    for record in caplog.records:
        assert API_KEY not in record.getMessage(), record.getMessage()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with serve(FakeAmplitude()) as running:
        yield running


@pytest.fixture
def amplitude(server: Server) -> Iterator[Server]:
    """
    The fake Amplitude, emptied for this test.
    """
    server.app.reset()
    yield server
    server.app.reset()


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest.fixture
def make_emitter(amplitude: Server, outcomes: Outcomes):
    """
    Builds emitters aimed at the fake, quick to flush and to retry, that
    report to ``outcomes``; keyword arguments override.
    """
    def make(**options) -> AmplitudeEmitter:
        options.setdefault("server_url", amplitude.url)
        options.setdefault("flush_interval", 0.05)
        options.setdefault("backoff", 0.02)
        options.setdefault("max_backoff", 0.1)
        options.setdefault("timeout", 2.0)
        options.setdefault("on_outcome", outcomes.callback)
        api_key = options.pop("api_key", API_KEY)
        return AmplitudeEmitter(api_key, **options)

    return make


