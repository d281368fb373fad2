"""Bad input and abuse: unknown keys, long paths and headers, slow bodies,
overload, and no secret in full in any log line."""

from __future__ import annotations

import logging

import anyio
import httpx
import pytest

from cdn import ONBOARDING_KEY
from relays import FIRST, KEY, SECOND, TOKEN, first_error, put, until

from flagstaff.relay import CDNSource, FileSource

pytestmark = pytest.mark.anyio


def _comparable(response: httpx.Response) -> tuple:
    headers = tuple(sorted((k, v) for k, v in response.headers.items() if k != "date"))
    return response.status_code, headers, response.content


async def test_unknown_keys_get_one_404_that_reveals_nothing(start):
    relay = start(admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        await put(http, relay, FIRST)
        answers = [
            await http.get(relay.config_url("configcat-sdk-1/" + KEY[16:-1] + "x")),
            await http.get(relay.config_url("nobody")),
            await http.get(relay.config_url(KEY[:-1]), headers={"Prefer": "wait=30"}),
            await http.get(f"{relay.url}/configuration-files/config_v6.json"),
            await http.get(f"{relay.url}/anything"),
        ]
    assert {_comparable(response) for response in answers} == {_comparable(answers[0])}
    assert answers[0].status_code == 404
    assert KEY[-6:] not in answers[0].text


async def test_a_path_longer_than_1_kb_is_414(start):
    relay = start(admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        response = await http.get(relay.config_url("k" * 1100))
    assert response.status_code == 414


@pytest.mark.parametrize("size", [9_000, 20_000], ids=["above-the-app-limit",
                                                      "above-uvicorn-limit"])
async def test_oversized_headers_are_refused(start, size):
    relay = start(admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        await put(http, relay, FIRST)
        try:
            response = await http.get(relay.config_url(), headers={"X-Big": "x" * size})
        except httpx.RemoteProtocolError:  # uvicorn may just close the connection
            status = None
        else:
            status = response.status_code
        after = await http.get(relay.config_url())
    assert status in ({431} if size < 16_000 else {400, 431, None})
    assert after.status_code == 200


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_a_request_head_past_16_kib_is_refused_by_either_parser(start, http):
    relay = start(admin_token=TOKEN, http=http)
    stream = await anyio.connect_tcp("127.0.0.1", relay.port)
    async with stream:
        await stream.send(f"GET {relay.config_url()[len(relay.url):]} HTTP/1.1\r\n"
                          "Host: 127.0.0.1\r\n".encode())
        with anyio.fail_after(5):
            for _ in range(64):  # 64 KiB of one header that never ends
                try:
                    await stream.send(b"X-Endless: " + b"x" * 1024)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    break
            answer = b""
            try:
                while chunk := await stream.receive():
                    answer += chunk
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                pass
    # The server closed the connection (the loop above ended); its answer
    # may be lost in the reset of data it never read.
    assert answer == b"" or answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 431 "))
    async with httpx.AsyncClient() as http_client:
        assert (await http_client.get(f"{relay.url}/health")).status_code == 200


async def test_other_methods_on_the_config_path_are_405(start):
    relay = start(admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        await put(http, relay, FIRST)
        response = await http.post(relay.config_url(), content=b"{}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_a_slow_admin_body_times_out_with_408(start):
    relay = start(admin_token=TOKEN, body_timeout=0.3)
    head = (
        f"PUT /admin/configs/{KEY} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n{{"
    ).encode()
    stream = await anyio.connect_tcp("127.0.0.1", relay.port)
    async with stream:
        await stream.send(head)
        with anyio.fail_after(5):
            answer = await stream.receive()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_past_max_requests_the_relay_answers_503(start):
    relay = start(admin_token=TOKEN, max_held=10, max_requests=2)
    async with httpx.AsyncClient(timeout=10) as http:
        etag = (await put(http, relay, FIRST)).json()["etag"]
        headers = {"If-None-Match": etag, "Prefer": "wait=30"}
        async with anyio.create_task_group() as tasks:
            for _ in range(2):
                tasks.start_soon(lambda: http.get(relay.config_url(), headers=headers))
            await until(lambda: relay.relay.held == 2)
            over = await http.get(relay.config_url())
            tasks.cancel_scope.cancel()
        await until(lambda: relay.relay.held == 0)
        after = await http.get(relay.config_url())
    assert over.status_code == 503
    assert after.status_code == 200
    assert int(over.headers["retry-after"]) >= 1


async def test_no_log_line_carries_a_key_or_the_token(
    start, upstream, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "config.json"
    path.write_text(FIRST)
    cdn_key = "configcat-sdk-1/flagstaff-test-logging/never-in-a-log-line"
    upstream.app.publish(cdn_key, FIRST)
    relay = start(FileSource(KEY, path, interval=0.05),
                  CDNSource(cdn_key, base_url=upstream.url, interval=0.05),
                  admin_token=TOKEN)
    other = "configcat-sdk-1/flagstaff-test-logging/admin-config-logged"
    async with httpx.AsyncClient() as http:
        await put(http, relay, FIRST, sdk_key=other)
        await put(http, relay, SECOND, sdk_key=other)
        await put(http, relay, b"{", sdk_key=other)
        await put(http, relay, FIRST, sdk_key=other, token="not-" + TOKEN)
        await put(http, relay, FIRST, sdk_key=other, token=TOKEN[:-2])
        await http.get(relay.config_url(other + "-unknown"))
        path.write_text("{")
        upstream.app.truncate(cdn_key)
        await until(lambda: all(c["error"] for c in relay.relay.health()["configs"]
                                if c["source"] != "admin"))
        upstream.app.fail_with(cdn_key, 404)
        arrived = upstream.app.arrived_for(cdn_key)
        await until(lambda: upstream.app.arrived_for(cdn_key) > arrived + 1)
        path.unlink()
        await until(lambda: "cannot read" in first_error(relay))

    # httpx logs every request URL at INFO, the key with it: the command sets
    # its logger to WARNING (test_command checks the real output).
    messages = [record.getMessage() for record in caplog.records
                if record.name.startswith(("flagstaff", "uvicorn"))]
    assert any("took effect" in message for message in messages)
    assert any("refused" in message for message in messages)
    for secret in (KEY, cdn_key, other, TOKEN, TOKEN[:-2], ONBOARDING_KEY):
        assert not [m for m in messages if secret in m], secret
