"""The admin endpoint: off without a token, refusing requests without it."""

from __future__ import annotations

import httpx
import pytest

from relays import FIRST, KEY, SECOND, TOKEN, put

from flagstaff.relay import FileSource

pytestmark = pytest.mark.anyio


async def test_without_a_configured_token_the_endpoint_does_not_exist(start):
    relay = start()
    async with httpx.AsyncClient() as http:
        response = await put(http, relay, FIRST)
        unknown = await http.get(f"{relay.url}/no/such/path")
    assert response.status_code == 404
    # The same answer as any path that does not exist.
    assert response.content == unknown.content


@pytest.mark.parametrize(("authorization", "status"), [
    (None, 401),
    ("Bearer wrong-token", 403),
    (f"Bearer {TOKEN}x", 403),
    (f"Basic {TOKEN}", 403),
    ("Bearer", 403),
], ids=["no-token", "wrong-token", "longer-token", "other-scheme", "empty-token"])
async def test_a_request_without_the_token_is_refused(start, authorization, status):
    relay = start(admin_token=TOKEN)
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient() as http:
        response = await http.put(relay.admin_url(), content=FIRST, headers=headers)
        served = await http.get(relay.config_url())
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in response.text
    assert served.status_code == 404  # nothing was published


async def test_a_good_config_is_published_and_a_bad_one_never_replaces_it(start):
    relay = start(admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        first = await put(http, relay, FIRST)
        bodies = (FIRST[: len(FIRST) // 2], b"", b"[]", b'{"f": []}', b"\xff")
        bad = [await put(http, relay, body) for body in bodies]
        served = await http.get(relay.config_url())

    assert first.status_code == 200
    assert first.json()["changed"] is True
    assert [response.status_code for response in bad] == [400] * 5
    assert "$.f" in bad[3].json()["error"]
    assert (served.status_code, served.text) == (200, FIRST)
    assert served.headers["etag"] == first.json()["etag"]


async def test_a_bad_config_for_a_new_key_adds_no_key(start):
    relay = start(admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        bad = await put(http, relay, b"{")
        served = await http.get(relay.config_url())
        health = (await http.get(f"{relay.url}/health")).json()
    assert bad.status_code == 400
    assert served.status_code == 404
    assert health["configs"] == []


async def test_a_config_too_large_is_refused_with_413(start):
    relay = start(admin_token=TOKEN, max_body=len(FIRST) - 1)
    async with httpx.AsyncClient() as http:
        declared = await put(http, relay, FIRST)

        async def chunks():  # no Content-Length: the size shows while reading
            yield FIRST.encode()

        streamed = await http.put(relay.admin_url(), content=chunks(),
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        small = await put(http, relay, b'{"f": {}}')
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert small.status_code == 200


async def test_a_key_fed_by_a_file_cannot_be_published(start, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(FIRST)
    relay = start(FileSource(KEY, path), admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        response = await put(http, relay, SECOND)
        served = await http.get(relay.config_url())
    assert response.status_code == 409
    assert served.text == FIRST


async def test_only_put_publishes(start):
    relay = start(admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        response = await http.post(relay.admin_url(), content=FIRST,
                                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 405
    assert response.headers["allow"] == "PUT"
