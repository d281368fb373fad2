"""
A fake of Amplitude's chart annotation API, version 2 (amplitude.md §3.5a):
a plain ASGI app, and a uvicorn server thread to run it on 127.0.0.1 only.

``POST /api/2/annotations`` takes its parameters from the query string or a
form body, as Amplitude does. It checks HTTP Basic auth against one API key
and secret key (401 otherwise), requires ``app_id`` (a number, the
project's), ``date`` (``YYYY-MM-DD``) and ``label`` (400 otherwise), stores
the annotation and answers ``{"annotation": {...}, "success": true}``.
``GET /api/2/annotations`` lists what is stored. Tests can make it answer
a status of their choice (500, 429 with ``Retry-After``) or hang, for the
next N requests or for all, and read every request it received.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional
from urllib.parse import parse_qsl

import anyio
import msgspec
import uvicorn

HOST = "127.0.0.1"
API_KEY = "annotations-api-key-0123456789ab"
SECRET_KEY = "annotations-secret-key-do-not-log-7f3e9c"
APP_ID = "424242"
PATH = "/api/2/annotations"

#: the longest a hanging answer waits before it gives up
MAX_WAIT = 30.0

_encode = msgspec.json.Encoder().encode


@dataclasses.dataclass(frozen=True)
class Received:
    """One request, and the status the fake answered."""

    method: str
    path: str
    #: the query string's and the form body's parameters together
    params: dict[str, str]
    #: the user name and password of Basic auth, or None
    credentials: Optional[tuple[str, str]]
    status: int
    #: ``time.monotonic()`` when it arrived
    time: float


@dataclasses.dataclass
class _Fault:
    status: int                     # 0: hang, then answer 503
    times: Optional[int]            # the next N requests; None: every one
    retry_after: Optional[str] = None


class FakeAnnotations:
    """
    The ASGI app. Its control methods are called from the test thread; call
    :meth:`reset` between tests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.reset()

    # -- control, called from the test thread -------------------------------

    def reset(self) -> None:
        """No faults, nothing stored or received, every hang released."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()
            self.api_key = API_KEY
            self.secret_key = SECRET_KEY
            self.app_id = APP_ID
            self.faults: list[_Fault] = []
            self.requests: list[Received] = []
            #: requests that arrived, answered or not (a hanging one is
            #: recorded in `requests` only once it is answered)
            self.arrivals = 0
            self.annotations: list[dict[str, Any]] = []
            self._next_id = 1

    def fail(self, status: int, times: Optional[int] = None,
             retry_after: Optional[str] = None) -> None:
        """Answers `status` to the next `times` posts (None: to every one)."""
        with self._lock:
            self.faults.append(_Fault(status, times, retry_after))

    def hang(self, times: Optional[int] = None) -> None:
        """Holds the next `times` posts (None: every one) until released."""
        with self._lock:
            self.faults.append(_Fault(0, times))

    def release(self) -> None:
        """Lets every hanging request go on (with a 503)."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()

    def posts(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def stored(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.annotations)

    # -- the ASGI app ---------------------------------------------------------

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {name.lower(): value for name, value in scope["headers"]}
        params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        if headers.get(b"content-type", b"").startswith(
            b"application/x-www-form-urlencoded"
        ):
            params.update(parse_qsl(b"".join(chunks).decode("utf-8")))
        credentials = _basic(headers.get(b"authorization"))
        method = scope["method"]
        arrived = time.monotonic()
        with self._lock:
            self.arrivals += 1

        status, body, extra = await self._answer(method, scope["path"], params,
                                                 credentials)
        with self._lock:
            self.requests.append(Received(method, scope["path"], params, credentials,
                                          status, arrived))
        response = [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status,
                    "headers": response})
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self, method: str, path: str, params: dict[str, str],
        credentials: Optional[tuple[str, str]],
    ) -> tuple[int, bytes, list]:
        if path != PATH:
            return 404, _encode({"error": "Not found"}), []
        if credentials != (self.api_key, self.secret_key):
            challenge = (b"www-authenticate", b'Basic realm="Amplitude"')
            return 401, _encode({"error": "Invalid API key or secret key"}), [challenge]
        if method == "GET":
            with self._lock:
                return 200, _encode({"data": self.annotations}), []
        if method != "POST":
            return 405, _encode({"error": "Method not allowed"}), []
        missing = [name for name in ("app_id", "date", "label") if not params.get(name)]
        if missing:
            return 400, _encode({"error": f"Missing parameters: {missing}"}), []
        if not _is_date(params["date"]) or params["app_id"] != self.app_id:
            return 400, _encode({"error": "Invalid date or app_id"}), []

        with self._lock:
            fault = next((f for f in self.faults if f.times is None or f.times > 0),
                         None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
            release = self._release
        if fault is not None:
            if fault.status == 0:
                await _wait(release, MAX_WAIT)
                return 503, _encode({"error": "Service Unavailable"}), []
            extra = []
            if fault.retry_after is not None:
                extra.append((b"retry-after", fault.retry_after.encode()))
            return fault.status, _encode({"error": "scripted failure"}), extra

        with self._lock:
            annotation = {"id": self._next_id, "date": params["date"],
                          "label": params["label"],
                          "details": params.get("details", "")}
            if "chart_id" in params:
                annotation["chart_id"] = params["chart_id"]
            self._next_id += 1
            self.annotations.append(annotation)
        return 200, _encode({"annotation": annotation, "success": True}), []


def _basic(header: Optional[bytes]) -> Optional[tuple[str, str]]:
    if header is None or not header.lower().startswith(b"basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _is_date(text: str) -> bool:
    try:
        return datetime.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


async def _wait(release: threading.Event, seconds: float) -> None:
    # The test thread cannot wake an event of the server's loop: nap and look.
    deadline = time.monotonic() + seconds
    while not release.is_set() and time.monotonic() < deadline:
        await anyio.sleep(0.01)


@dataclasses.dataclass
class Server:
    """A running fake: its base URL (no trailing slash) and its app."""

    url: str
    app: FakeAnnotations


@contextmanager
def serve(app: FakeAnnotations, start_timeout: float = 10.0) -> Iterator[Server]:
    """
    Runs `app` under uvicorn on a free port of 127.0.0.1 in a background
    thread until the block ends.

    :raises RuntimeError: when the server does not start in `start_timeout`.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host=HOST, port=port, log_level="critical", lifespan="off",
        loop="asyncio", http="h11", ws="none", access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"fake-annotations-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake annotation API did not start on {port}")
            time.sleep(0.01)
        yield Server(f"http://{HOST}:{port}", app)
    finally:
        app.release()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def fresh(server: Server) -> Iterator[Server]:
    """`server` emptied before and after a test."""
    server.app.reset()
    try:
        yield server
    finally:
        server.app.reset()


def annotator_options(server: Server) -> dict[str, Any]:
    """Keywords of a ChartAnnotator aimed at `server`, quick to retry."""
    return {"server_url": server.url, "backoff": 0.01, "max_backoff": 0.05,
            "timeout": 2.0}
