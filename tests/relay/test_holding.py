"""The protocol of long-poll.md: immediate answers, holds, wake-ups, the cap."""

from __future__ import annotations

import functools
import time

import anyio
import httpx
import pytest

from relays import FIRST, KEY, SECOND, TOKEN, put, until

from flagstaff.relay import etag_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def relay(start):
    return start(admin_token=TOKEN)


async def _published(http, relay, text=FIRST) -> str:
    response = await put(http, relay, text)
    assert response.status_code == 200, response.text
    return response.json()["etag"]


async def test_a_different_etag_gets_the_config_at_once(relay):
    async with httpx.AsyncClient() as http:
        etag = await _published(http, relay)
        plain = await http.get(relay.config_url())
        stale = await http.get(relay.config_url(), headers={
            "If-None-Match": '"something-else"', "Prefer": "wait=30"})

    assert (plain.status_code, plain.text) == (200, FIRST)
    assert plain.headers["etag"] == etag == etag_of(FIRST.encode())
    assert not etag.startswith("W/")
    assert plain.headers["cache-control"] == "no-cache"
    assert plain.headers["content-type"] == "application/json"
    assert "preference-applied" not in plain.headers
    # An immediate 200 to a Prefer request says that this server holds.
    assert (stale.status_code, stale.text) == (200, FIRST)
    assert stale.headers["preference-applied"] == "wait=30"
    assert stale.elapsed.total_seconds() < 1


async def test_the_same_etag_without_prefer_is_304_at_once(relay):
    async with httpx.AsyncClient() as http:
        etag = await _published(http, relay)
        response = await http.get(relay.config_url(), headers={"If-None-Match": etag})

    assert (response.status_code, response.content) == (304, b"")
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "no-cache"
    assert "preference-applied" not in response.headers
    assert "retry-after" not in response.headers


@pytest.mark.parametrize("header", [
    "W/{etag}", '"other", {etag}', "*",
], ids=["weak", "list", "star"])
async def test_if_none_match_compares_weakly_and_takes_lists(relay, header):
    async with httpx.AsyncClient() as http:
        etag = await _published(http, relay)
        response = await http.get(relay.config_url(),
                                  headers={"If-None-Match": header.format(etag=etag)})
    assert response.status_code == 304


async def test_a_held_request_is_answered_the_moment_the_config_changes(relay):
    async with httpx.AsyncClient(timeout=10) as http:
        etag = await _published(http, relay)
        answers: list[tuple[httpx.Response, float]] = []

        async def hold() -> None:
            response = await http.get(relay.config_url(), headers={
                "If-None-Match": etag, "Prefer": "wait=30"})
            answers.append((response, time.monotonic()))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            await until(lambda: relay.relay.held == 1)
            await anyio.sleep(0.2)
            assert not answers
            published = time.monotonic()
            new_etag = await _published(http, relay, SECOND)

    (response, answered), = answers
    assert (response.status_code, response.text) == (200, SECOND)
    assert response.headers["etag"] == new_etag
    assert response.headers["preference-applied"] == "wait=30"
    assert response.headers["cache-control"] == "no-cache"
    assert answered - published < 1.0
    # The relay counts the request as held until its answer is written,
    # which may be a moment after the client has read it.
    await until(lambda: relay.relay.held == 0, timeout=2.0)


async def test_a_held_request_gets_304_after_its_wait(relay):
    async with httpx.AsyncClient(timeout=10) as http:
        etag = await _published(http, relay)
        began = time.monotonic()
        response = await http.get(relay.config_url(), headers={
            "If-None-Match": etag, "Prefer": "wait=1"})
        took = time.monotonic() - began

    assert (response.status_code, response.content) == (304, b"")
    assert response.headers["preference-applied"] == "wait=1"
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "no-cache"
    # N plus a jitter of at most N/16.
    assert 1.0 <= took < 1.0 + 1 / 16 + 0.5


@pytest.mark.parametrize(("prefer", "applied"), [
    ("wait=120", "wait=55"),
    ("respond-async, wait=10", "wait=10"),
    ('wait="7"; x=1', "wait=7"),
    ("wait=2.5", "wait=2.5"),
    ("wait=abc", None),
    ("wait=-3", None),
    ("return=minimal", None),
], ids=["clamped", "among-others", "quoted-with-parameter", "decimal", "not-a-number",
        "negative", "another-preference"])
async def test_prefer_wait_is_read_as_rfc_7240_and_clamped(relay, prefer, applied):
    async with httpx.AsyncClient() as http:
        await _published(http, relay)
        response = await http.get(relay.config_url(), headers={"Prefer": prefer})
    assert response.status_code == 200
    assert response.headers.get("preference-applied") == applied


async def test_wait_zero_is_a_poll_from_a_holding_server(relay):
    async with httpx.AsyncClient() as http:
        etag = await _published(http, relay)
        response = await http.get(relay.config_url(), headers={
            "If-None-Match": etag, "Prefer": "wait=0"})
    assert response.status_code == 304
    assert response.headers["preference-applied"] == "wait=0"
    assert response.elapsed.total_seconds() < 1


async def test_past_the_cap_a_request_is_a_plain_poll_with_retry_after(start):
    relay = start(admin_token=TOKEN, max_held=2)
    async with httpx.AsyncClient(timeout=10) as http:
        etag = await _published(http, relay)
        statuses: list[int] = []

        async def hold() -> None:
            response = await http.get(relay.config_url(), headers={
                "If-None-Match": etag, "Prefer": "wait=30"})
            statuses.append(response.status_code)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            tasks.start_soon(hold)
            await until(lambda: relay.relay.held == 2)
            over = await http.get(relay.config_url(), headers={
                "If-None-Match": etag, "Prefer": "wait=30"})
            assert over.status_code == 304
            assert over.elapsed.total_seconds() < 1
            assert "preference-applied" not in over.headers
            assert int(over.headers["retry-after"]) >= 1
            assert over.headers["cache-control"] == "no-cache"
            # A changed config is still served at once past the cap.
            stale = await http.get(relay.config_url(), headers={
                "If-None-Match": '"old"', "Prefer": "wait=30"})
            assert stale.status_code == 200
            await _published(http, relay, SECOND)

    assert statuses == [200, 200]


async def test_a_disconnected_client_frees_its_slot(start):
    relay = start(admin_token=TOKEN, max_held=1)
    async with httpx.AsyncClient() as http:
        etag = await _published(http, relay)
    request = (
        f"GET /configuration-files/{KEY}/config_v6.json HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nIf-None-Match: {etag}\r\nPrefer: wait=30\r\n\r\n"
    ).encode()

    for _ in range(3):  # the one slot is taken and freed again each time
        stream = await anyio.connect_tcp("127.0.0.1", relay.port)
        await stream.send(request)
        await until(lambda: relay.relay.held == 1)
        await stream.aclose()
        await until(lambda: relay.relay.held == 0)

    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{relay.url}/health")).json()
    assert health["held"] == 0
    assert health["configs"][0]["held"] == 0


async def test_head_answers_like_get_without_a_body(relay):
    async with httpx.AsyncClient() as http:
        etag = await _published(http, relay)
        response = await http.head(relay.config_url())
        held = await http.head(relay.config_url(), headers={
            "If-None-Match": etag, "Prefer": "wait=1"})
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["etag"] == etag
    assert response.headers["content-length"] == str(len(FIRST.encode()))
    assert held.status_code == 304
    assert held.headers["preference-applied"] == "wait=1"


async def test_a_republished_identical_config_wakes_nobody(relay):
    async with httpx.AsyncClient(timeout=10) as http:
        etag = await _published(http, relay)
        async with anyio.create_task_group() as tasks:
            headers = {"If-None-Match": etag, "Prefer": "wait=1"}
            tasks.start_soon(functools.partial(http.get, headers=headers),
                             relay.config_url())
            await until(lambda: relay.relay.held == 1)
            response = await put(http, relay, FIRST)
            assert response.json() == {"etag": etag, "changed": False}
            await anyio.sleep(0.2)
            assert relay.relay.held == 1
