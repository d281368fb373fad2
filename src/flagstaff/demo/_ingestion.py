"""
An Amplitude-compatible ingestion endpoint inside the demo's process: it
takes HTTP V2 and Batch uploads and chart annotations as Amplitude does (the
API key checked, events deduplicated on their insert id, annotations behind
the project's API and secret keys) and keeps what it ingested, so that the
demo reads its experiment from what really arrived.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import threading
import time
from typing import Any, Optional
from urllib.parse import parse_qsl

import msgspec

__all__ = ("LocalAmplitude",)

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_JSON = [(b"content-type", b"application/json")]
_MAX_BODY = 20 * 1024 * 1024


class LocalAmplitude:
    """
    The ASGI app. ``events`` holds every event ingested, in the order they
    arrived, without the repeats of an insert id; ``annotations`` the chart
    annotations posted.
    """

    def __init__(self, api_key: str, secret_key: str, app_id: int) -> None:
        self.api_key = api_key
        self.app_id = app_id
        credentials = f"{api_key}:{secret_key}".encode()
        self._authorization = b"Basic " + base64.b64encode(credentials)
        self.events: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        #: events not ingested again because their insert id was seen
        self.repeats = 0
        self._insert_ids: set[str] = set()
        self._lock = threading.Lock()

    def snapshot(self) -> list[dict[str, Any]]:
        """
        A copy of the events ingested so far, safe to read while uploads go on.
        """
        with self._lock:
            return list(self.events)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # served with the lifespan off, and without websockets
        body = await _body(receive)
        path, method = scope["path"], scope["method"]
        if path in ("/2/httpapi", "/batch") and method == "POST":
            status, answer = self._upload(scope, body)
        elif path == "/api/2/annotations" and method == "POST":
            status, answer = self._annotate(scope, body)
        else:
            status, answer = 404, {"error": f"no {method} {path} here"}
        payload = _encode(answer)
        length = (b"content-length", str(len(payload)).encode())
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON, length]})
        await send({"type": "http.response.body", "body": payload})

    def _upload(self, scope: dict, body: Optional[bytes]) -> tuple[int, dict]:
        if body is None:
            return 413, {"code": 413, "error": "Payload too large"}
        if _header(scope, b"content-encoding") == b"gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                return 400, {"code": 400, "error": "Invalid JSON request body"}
        try:
            request = _decode(body)
        except msgspec.DecodeError:
            return 400, {"code": 400, "error": "Invalid JSON request body"}
        if not isinstance(request, dict):
            return 400, {"code": 400, "error": "Invalid JSON request body"}
        for field in ("api_key", "events"):
            if field not in request:
                return 400, {"code": 400, "error": "Request missing required field",
                             "missing_field": field}
        if request["api_key"] != self.api_key:
            return 400, {"code": 400, "error": f"Invalid API key: {request['api_key']}"}
        events = request["events"]
        if not isinstance(events, list):
            return 400, {"code": 400, "error": "Request missing required field",
                         "missing_field": "events"}

        received = int(time.time() * 1000)
        with self._lock:
            for event in events:
                insert_id = event.get("insert_id")
                if insert_id is not None:
                    if insert_id in self._insert_ids:
                        self.repeats += 1
                        continue
                    self._insert_ids.add(insert_id)
                event["server_received_time"] = received
                self.events.append(event)
        return 200, {"code": 200, "events_ingested": len(events),
                     "payload_size_bytes": len(body), "server_upload_time": received}

    def _annotate(self, scope: dict, body: Optional[bytes]) -> tuple[int, dict]:
        given = _header(scope, b"authorization") or b""
        if not hmac.compare_digest(given, self._authorization):
            return 401, {"error": "Invalid API key or secret key"}
        fields = dict(parse_qsl(scope.get("query_string", b"").decode()))
        if body:
            fields.update(parse_qsl(body.decode(errors="replace")))
        missing = [name for name in ("app_id", "date", "label") if not fields.get(name)]
        if missing:
            return 400, {"error": f"missing required parameter {missing[0]}"}
        if fields["app_id"] != str(self.app_id):
            return 400, {"error": f"no project with app_id {fields['app_id']}"}

        with self._lock:
            annotation = {"id": len(self.annotations) + 1, "date": fields["date"],
                          "label": fields["label"], "details": fields.get("details")}
            self.annotations.append(annotation)
        return 200, {"annotation": annotation, "success": True}


def _header(scope: dict, name: bytes) -> Optional[bytes]:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def _body(receive: Any) -> Optional[bytes]:
    """The request body; None past the largest upload Amplitude accepts."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)
