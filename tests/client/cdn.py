"""
A fake ConfigCat CDN: a plain ASGI app and a uvicorn server thread to run it.

The app serves ``GET <prefix>/configuration-files/<sdk_key>/config_v6.json``
from an in-memory dict *SDK key -> config JSON text*, with a strong ETag
computed from the text and 304 for a matching ``If-None-Match``. Publishing
is replacing the text. Per key it can be told to misbehave (a status code, a
body of its choice, a delay, a hang until released), and it records every
request it receives so that tests can assert on what the client sent.

The server runs in a thread with its own asyncio loop, so the same server
serves tests under asyncio and under trio. It only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import uvicorn

from configcat_data import REPO, config_text, read_json

HOST = "127.0.0.1"

#: a real ConfigCat SDK key and the config its matrix tests download
MATRIX = read_json("configs_v6/index.json")["testmatrix.csv"]
MATRIX_KEY: str = MATRIX["sdkKey"]
MATRIX_TEXT: str = config_text(MATRIX["config"])

SEGMENTS = read_json("configs_v6/index.json")["testmatrix_segments_old.csv"]
SEGMENTS_KEY: str = SEGMENTS["sdkKey"]
SEGMENTS_TEXT: str = config_text(SEGMENTS["config"])

#: the package's example config, under a made-up key of ConfigCat's format
ONBOARDING_KEY = "configcat-sdk-1/flagstaff-test-onboard/onboarding-example-001"
ONBOARDING_FILE = REPO / "src" / "flagstaff" / "examples" / "onboarding.json"
ONBOARDING_TEXT = ONBOARDING_FILE.read_text(encoding="utf-8")

assert [len(part) for part in ONBOARDING_KEY.split("/")[1:]] == [22, 22]

PATH_TAIL = "/config_v6.json"
PATH_HEAD = "/configuration-files/"

#: the longest a hanging or delayed response waits before it gives up
MAX_WAIT = 30.0


def etag_of(text: str) -> str:
    """
    The strong ETag the fake CDN sends for a config text.
    """
    return '"' + hashlib.sha1(text.encode()).hexdigest()[:20] + '"'


def with_redirect(text: str, url: str, redirect: int) -> str:
    """
    A config text whose preferences redirect to ``url`` with mode ``redirect``
    (``p.u`` and ``p.r``).
    """
    document = json.loads(text)
    document.setdefault("p", {}).update(u=url, r=redirect)
    return json.dumps(document)


def with_default(text: str, key: str, value: bool | str | int | float) -> str:
    """
    A config text whose setting ``key`` has another served value ``v``.
    """
    document = json.loads(text)
    setting = document["f"][key]
    field = {0: "b", 1: "s", 2: "i", 3: "d"}[setting["t"]]
    setting["v"] = {field: value}
    return json.dumps(document)


@dataclasses.dataclass(frozen=True)
class Request:
    """
    One request the fake CDN received, and what it answered.
    """

    method: str
    path: str
    #: the SDK key in the path, or None for a path outside the protocol
    sdk_key: str | None
    #: header names in lower case; a repeated header keeps its last value
    headers: dict[str, str]
    #: ``time.monotonic()`` when the request arrived
    time: float
    status: int


@dataclasses.dataclass
class _Rule:
    """How to answer the requests for one key: the fields apply in order."""

    delay: float = 0.0
    hang: bool = False
    status: int | None = None
    body: str | None = None


class FakeCDN:
    """
    The ASGI app. ``prefix`` is a path prefix before ``/configuration-files``
    (so one port can imitate two base URLs); the default serves the root.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")
        self.configs: dict[str, str] = {}
        self.requests: list[Request] = []
        #: (SDK key, time) of every request when it arrived, answered or not
        self.arrivals: list[tuple[str | None, float]] = []
        self._rules: dict[str, _Rule] = {}
        self._no_etag: set[str] = set()
        self._release = threading.Event()
        self._lock = threading.Lock()

    # -- control, called from the test thread -------------------------------

    def reset(self) -> None:
        """
        Forget every config, rule and request, and release every hang.
        """
        with self._lock:
            self._release.set()
            self._release = threading.Event()
            self.configs = {}
            self._rules = {}
            self._no_etag = set()
            self.requests = []
            self.arrivals = []

    def publish(self, sdk_key: str, text: str) -> None:
        """
        Serve ``text`` for ``sdk_key`` from now on.
        """
        self.configs[sdk_key] = text

    def fix(self, sdk_key: str) -> None:
        """
        Drop the misbehaviour of a key (and release its hanging requests).
        """
        with self._lock:
            self._rules.pop(sdk_key, None)
        self.release()

    def release(self) -> None:
        """
        Let every hanging or delayed request go on now.
        """
        with self._lock:
            self._release.set()
            self._release = threading.Event()

    def omit_etag(self, sdk_key: str) -> None:
        """
        Send no ETag for ``sdk_key`` (and so never 304), as some servers do.
        """
        self._no_etag.add(sdk_key)

    def fail_with(self, sdk_key: str, status: int) -> None:
        """
        Answer ``status`` with an empty body for ``sdk_key``.
        """
        self._rules[sdk_key] = _Rule(status=status)

    def serve_body(self, sdk_key: str, body: str) -> None:
        """
        Answer 200 with ``body`` (whatever it is) for ``sdk_key``.
        """
        self._rules[sdk_key] = _Rule(status=200, body=body)

    def truncate(self, sdk_key: str) -> None:
        """
        Answer 200 with the first half of the published text.
        """
        text = self.configs[sdk_key]
        self.serve_body(sdk_key, text[: len(text) // 2])

    def hang(self, sdk_key: str) -> None:
        """
        Hold the requests for ``sdk_key`` until :meth:`release`, :meth:`fix`
        or :meth:`reset` (at most :data:`MAX_WAIT` seconds), then serve.
        """
        self._rules[sdk_key] = _Rule(hang=True)

    def delay(self, sdk_key: str, seconds: float) -> None:
        """
        Wait ``seconds`` before answering the requests for ``sdk_key``.
        """
        self._rules[sdk_key] = _Rule(delay=seconds)

    def arrived_for(self, sdk_key: str) -> int:
        """
        How many requests for one SDK key arrived, including unanswered ones.
        """
        return sum(1 for key, _ in list(self.arrivals) if key == sdk_key)

    def requests_for(self, sdk_key: str) -> list[Request]:
        """
        The recorded requests for one SDK key, oldest first.
        """
        return [r for r in list(self.requests) if r.sdk_key == sdk_key]

    # -- the ASGI app, run in the server thread ------------------------------

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        arrived = time.monotonic()
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        # A request held across a reset belongs to the test that made it.
        with self._lock:
            release, requests = self._release, self.requests
        sdk_key = self._sdk_key(scope["path"])
        self.arrivals.append((sdk_key, arrived))
        status, body, extra = await self._answer(scope, sdk_key, headers, release)
        requests.append(
            Request(scope["method"], scope["path"], sdk_key, headers, arrived, status)
        )
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        start = {"type": "http.response.start", "status": status}
        await send({**start, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    def _sdk_key(self, path: str) -> str | None:
        head = self.prefix + PATH_HEAD
        if not (path.startswith(head) and path.endswith(PATH_TAIL)):
            return None
        return path[len(head) : -len(PATH_TAIL)] or None

    async def _answer(
        self,
        scope: dict,
        sdk_key: str | None,
        headers: dict[str, str],
        release: threading.Event,
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if scope["method"] != "GET" or sdk_key is None:
            return 404, b"", []
        rule = self._rules.get(sdk_key, _Rule())
        if rule.delay:
            await _wait(release, rule.delay)
        if rule.hang:
            await _wait(release, MAX_WAIT)
        if rule.status is not None and rule.body is None:
            return rule.status, b"", []
        if rule.body is not None:
            etag = etag_of(rule.body).encode()
            return rule.status or 200, rule.body.encode(), [(b"etag", etag)]
        text = self.configs.get(sdk_key)
        if text is None:
            return 404, b"", []
        if sdk_key in self._no_etag:
            return 200, text.encode(), []
        etag = etag_of(text)
        if etag in _etags(headers.get("if-none-match", "")):
            return 304, b"", [(b"etag", etag.encode())]
        return 200, text.encode(), [(b"etag", etag.encode())]


def _etags(header: str) -> set[str]:
    tags = (tag.strip() for tag in header.split(","))
    return {tag.removeprefix("W/") for tag in tags if tag}


async def _wait(release: threading.Event, seconds: float) -> None:
    # The test thread cannot wake an anyio Event of the server's loop, so
    # the handler looks at a threading.Event in short naps.
    deadline = time.monotonic() + seconds
    while not release.is_set() and time.monotonic() < deadline:
        await anyio.sleep(min(0.01, max(0.0, deadline - time.monotonic())))


@dataclasses.dataclass
class Server:
    """
    A running fake CDN: its base URL (no trailing slash) and its app.
    """

    url: str
    app: FakeCDN
    port: int


def free_port() -> int:
    """
    A port on 127.0.0.1 that nothing listens on (when this returns).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def serve(app: FakeCDN, port: int = 0, start_timeout: float = 10.0) -> Iterator[Server]:
    """
    Runs ``app`` under uvicorn on 127.0.0.1 in a background thread until the
    block ends. ``port=0`` takes a free port.

    :raises RuntimeError: when the server does not start in ``start_timeout``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # No Nagle: the body of an answer would wait ~40 ms for the ACK of its head.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        log_level="warning",
        lifespan="off",
        loop="asyncio",
        http="h11",
        ws="none",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"fake-cdn-{port}"
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake CDN did not start on port {port}")
            time.sleep(0.01)
        yield Server(f"http://{HOST}:{port}{app.prefix}", app, port)
    finally:
        app.release()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -- helpers of the tests ---------------------------------------------------


@dataclasses.dataclass
class Hooks:
    """
    Records every call of the client's hooks: ``hooks.kwargs()`` plugs them in.
    """

    ready: list[tuple] = dataclasses.field(default_factory=list)
    changed: list[tuple] = dataclasses.field(default_factory=list)
    evaluated: list[tuple] = dataclasses.field(default_factory=list)
    errors: list[tuple] = dataclasses.field(default_factory=list)

    def kwargs(self) -> dict[str, Callable[..., None]]:
        return {
            "on_ready": lambda *args: self.ready.append(args),
            "on_config_changed": lambda *args: self.changed.append(args),
            "on_flag_evaluated": lambda *args: self.evaluated.append(args),
            "on_error": lambda *args: self.errors.append(args),
        }

    def error_text(self) -> str:
        return "\n".join(" ".join(map(str, args)) for args in self.errors)


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, step: float = 0.01
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


def configcat_cache_key(sdk_key: str) -> str:
    """
    The key ConfigCat's SDKs keep an SDK key's config under (computed here,
    not by flagstaff, so that the tests check flagstaff's).
    """
    return hashlib.sha1(f"{sdk_key}_config_v6.json_v2".encode()).hexdigest()


def cache_entry(text: str, etag: str, fetch_time_ms: int) -> str:
    """
    A cache entry in ConfigCat's format.
    """
    return f"{fetch_time_ms}\n{etag}\n{text}"
