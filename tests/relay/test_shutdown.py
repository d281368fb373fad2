"""A graceful shutdown answers every held request with its 304 first."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from relays import FIRST, TOKEN, put, until

pytestmark = pytest.mark.anyio


async def test_shutdown_answers_every_held_request_with_304(start):
    relay = start(admin_token=TOKEN)
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=10) as http:
        etag = (await put(http, relay, FIRST)).json()["etag"]

        async def hold() -> None:
            answers.append(await http.get(relay.config_url(), headers={
                "If-None-Match": etag, "Prefer": "wait=30"}))

        async with anyio.create_task_group() as tasks:
            for _ in range(5):
                tasks.start_soon(hold)
            await until(lambda: relay.relay.held == 5)
            began = time.monotonic()
            relay.stop()
        took = time.monotonic() - began

    assert took < 3  # not the 30 s of the hold
    assert [response.status_code for response in answers] == [304] * 5
    for response in answers:
        assert response.headers["preference-applied"] == "wait=30"
        assert response.headers["etag"] == etag
        assert response.headers["connection"] == "close"
    assert relay.relay.health()["closing"] is True


async def test_after_shutdown_a_request_is_503(start):
    relay = start(admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        await put(http, relay, FIRST)
    await relay.relay.shutdown()  # not listening stopped: answers still go out
    async with httpx.AsyncClient() as http:
        response = await http.get(relay.config_url())
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
