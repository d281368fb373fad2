"""The sources: a fake CDN polled with ETags, and watched files."""

from __future__ import annotations

import os

import httpx
import pytest

from cdn import ONBOARDING_KEY, with_redirect
from relays import FIRST, KEY, SECOND, THIRD, first_error, until

from flagstaff.relay import CDNSource, FileSource
from flagstaff.testing import sdk_key_for

pytestmark = pytest.mark.anyio


async def _served(http: httpx.AsyncClient, relay) -> str:
    response = await http.get(relay.config_url())
    return response.text if response.status_code == 200 else ""


async def test_a_file_change_is_picked_up_and_wakes_held_requests(start, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(FIRST)
    relay = start(FileSource(KEY, path, interval=0.05))
    async with httpx.AsyncClient(timeout=10) as http:
        first = await http.get(relay.config_url())
        assert first.text == FIRST
        path.write_text(SECOND)
        answer = await http.get(relay.config_url(), headers={
            "If-None-Match": first.headers["etag"], "Prefer": "wait=10"})
        assert answer.status_code == 200
        assert answer.text == SECOND
        assert answer.elapsed.total_seconds() < 5


async def test_a_bad_file_never_replaces_the_config_served(start, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(FIRST)
    relay = start(FileSource(KEY, path, interval=0.05))
    async with httpx.AsyncClient() as http:
        path.write_text(FIRST[: len(FIRST) // 2])
        await until(lambda: first_error(relay))
        assert await _served(http, relay) == FIRST
        path.unlink()
        await until(lambda: "cannot read" in first_error(relay))
        assert await _served(http, relay) == FIRST
        # Written atomically, as deploy tools do: a new inode.
        temporary = tmp_path / "config.json.tmp"
        temporary.write_text(THIRD)
        os.replace(temporary, path)
        await until(lambda: not first_error(relay))
        assert await _served(http, relay) == THIRD


async def test_the_cdn_is_polled_once_per_interval_whatever_the_clients(
    start, upstream, anyio_backend
):
    # A key of this run's own: a poll of another test's relay, still on its
    # way to the shared fake CDN as that relay stops, must not count here.
    key = sdk_key_for(f"polled-once-per-interval-{anyio_backend}")
    upstream.app.publish(key, FIRST)
    relay = start(CDNSource(key, base_url=upstream.url, interval=0.2))
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(20):
            assert (await http.get(relay.config_url(key))).text == FIRST
        upstream.app.publish(key, SECOND)
        etag = (await http.head(relay.config_url(key))).headers["etag"]
        changed = await http.get(relay.config_url(key), headers={
            "If-None-Match": etag, "Prefer": "wait=10"})
    assert changed.text == SECOND
    requests = upstream.app.requests_for(key)
    assert len(requests) <= 10  # 20 client requests; about one poll per 0.2 s
    # After the first download the relay asks with the CDN's ETag.
    assert requests[0].headers.get("if-none-match") is None
    assert all(r.headers.get("if-none-match") for r in requests[1:])
    assert {r.status for r in requests} <= {200, 304}


async def test_a_bad_upstream_body_never_replaces_the_config_served(start, upstream):
    upstream.app.publish(ONBOARDING_KEY, FIRST)
    relay = start(CDNSource(KEY, base_url=upstream.url, interval=0.1))
    async with httpx.AsyncClient() as http:
        assert await _served(http, relay) == FIRST
        upstream.app.truncate(ONBOARDING_KEY)
        arrived = upstream.app.arrived_for(ONBOARDING_KEY)
        await until(lambda: upstream.app.arrived_for(ONBOARDING_KEY) >= arrived + 2)
        assert "bad config" in first_error(relay)
        assert await _served(http, relay) == FIRST
        upstream.app.fail_with(ONBOARDING_KEY, 500)
        arrived = upstream.app.arrived_for(ONBOARDING_KEY)
        await until(lambda: upstream.app.arrived_for(ONBOARDING_KEY) >= arrived + 1)
        assert await _served(http, relay) == FIRST
        upstream.app.fix(ONBOARDING_KEY)
        upstream.app.publish(ONBOARDING_KEY, THIRD)
        await until(lambda: not first_error(relay), timeout=10)
        assert await _served(http, relay) == THIRD


async def test_the_cdn_source_follows_a_forced_redirect(start, upstream, upstream2):
    upstream.app.publish(ONBOARDING_KEY, with_redirect(FIRST, upstream2.url, 2))
    upstream2.app.publish(ONBOARDING_KEY, THIRD)
    relay = start(CDNSource(KEY, base_url=upstream.url, interval=0.1))
    async with httpx.AsyncClient() as http:
        assert await _served(http, relay) == THIRD
        await until(lambda: len(upstream2.app.requests_for(ONBOARDING_KEY)) >= 3)
    # Once redirected, the relay polls the other server only.
    assert len(upstream.app.requests_for(ONBOARDING_KEY)) == 1


async def test_an_unloaded_key_is_503_with_retry_after(start, upstream):
    upstream.app.fail_with(ONBOARDING_KEY, 500)
    relay = start(CDNSource(KEY, base_url=upstream.url, interval=5), init_wait=0.5)
    async with httpx.AsyncClient() as http:
        response = await http.get(relay.config_url())
        health = await http.get(f"{relay.url}/health")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert health.status_code == 503
    assert health.json()["configs"][0]["loaded"] is False
