"""
The CDN protocol against a fake CDN: the request, ETags and 304, and every
kind of failure keeping the last good config until the server is fixed.
"""

import time
from datetime import datetime, timezone

import anyio
import pytest

import flagstaff
from cdn import (
    MATRIX_KEY,
    MATRIX_TEXT,
    ONBOARDING_KEY,
    ONBOARDING_TEXT,
    FakeCDN,
    cache_entry,
    configcat_cache_key,
    etag_of,
    free_port,
    serve,
    wait_until,
    with_default,
)
from flagstaff import AutoPoll, Client, ErrorCode, ManualPoll, MemoryCache

pytestmark = pytest.mark.anyio

#: the onboarding example after a publication that turns the badge on
BADGE_ON = with_default(ONBOARDING_TEXT, "premiumBadge", True)


async def test_first_value_arrives_within_max_init_wait(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    polling = AutoPoll(interval=60, max_init_wait=5)

    with anyio.fail_after(5):
        async with Client(MATRIX_KEY, polling=polling, base_url=cdn.url) as client:
            assert await client.get_value("keySampleText", "none") == "Cat"
            details = await client.get_value_details("stringDefaultCat", "none")

    assert (details.value, details.is_default_value) == ("Cat", False)
    assert details.error_code == ErrorCode.NONE
    assert details.fetch_time is not None
    [request] = cdn.app.requests_for(MATRIX_KEY)
    assert request.method == "GET"
    assert request.path == f"/configuration-files/{MATRIX_KEY}/config_v6.json"
    assert "if-none-match" not in request.headers


async def test_request_headers_name_the_polling_mode(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    async with Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url) as client:
        await client.refresh()

    [request] = cdn.app.requests_for(MATRIX_KEY)
    agent = request.headers["x-configcat-useragent"]
    assert request.headers["user-agent"] == agent
    assert "/m-" in agent
    assert request.headers["x-configcat-pythonversion"]


async def test_hanging_server_serves_the_default_after_max_init_wait(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cdn.app.hang(MATRIX_KEY)
    polling = AutoPoll(interval=60, max_init_wait=0.5)

    with anyio.fail_after(5):
        async with Client(MATRIX_KEY, polling=polling, base_url=cdn.url) as client:
            start = time.monotonic()
            details = await client.get_value_details("keySampleText", "fallback")
            waited = time.monotonic() - start
            await client.aclose()
            closing = time.monotonic() - start - waited

    assert 0.4 <= waited < 2.0
    assert closing < 1.0
    assert (details.value, details.is_default_value) == ("fallback", True)
    assert details.error_code == ErrorCode.CONFIG_JSON_NOT_AVAILABLE
    assert details.error


async def test_a_published_change_is_seen_within_one_interval(cdn):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    polling = AutoPoll(interval=1, max_init_wait=5)

    async with Client(ONBOARDING_KEY, polling=polling, base_url=cdn.url) as client:
        assert await client.get_value("premiumBadge", None) is False
        cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
        published = time.monotonic()
        with anyio.fail_after(3):
            while not await client.get_value("premiumBadge", None):
                await anyio.sleep(0.02)
        seen_after = time.monotonic() - published

    assert seen_after <= 1.5
    assert client.snapshot().etag == etag_of(BADGE_ON)


async def test_the_second_poll_sends_if_none_match_and_gets_304(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    polling = AutoPoll(interval=1, max_init_wait=5)

    async with Client(MATRIX_KEY, polling=polling, base_url=cdn.url) as client:
        await client.get_value("keySampleText", "none")
        first = client.snapshot()
        await wait_until(lambda: len(cdn.app.requests_for(MATRIX_KEY)) >= 2, 3)
        await wait_until(lambda: client.snapshot().fetch_time != first.fetch_time, 1)
        second = client.snapshot()
        assert await client.get_value("keySampleText", "none") == "Cat"

    one, two = cdn.app.requests_for(MATRIX_KEY)[:2]
    assert "if-none-match" not in one.headers and one.status == 200
    assert two.headers["if-none-match"] == etag_of(MATRIX_TEXT)
    assert two.status == 304
    assert first.etag == second.etag == etag_of(MATRIX_TEXT)
    assert second.config is first.config
    # a 304 makes the held config fresh again
    assert second.fetch_time > first.fetch_time
    assert second.age < 1


async def test_snapshot_reports_the_download(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    async with Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url) as client:
        assert client.snapshot().config is None
        assert client.snapshot().fetch_time is None and client.snapshot().age is None
        before = datetime.now(timezone.utc)
        assert (await client.refresh()).is_success
        snap = client.snapshot()

    assert isinstance(snap.config, flagstaff.Config)
    assert before <= snap.fetch_time <= datetime.now(timezone.utc)
    assert snap.fetch_time.tzinfo is not None
    assert 0 <= snap.age < 1
    assert snap.etag == etag_of(MATRIX_TEXT)
    assert snap.get_value("keySampleText", "none") == "Cat"
    assert snap.get_value("missing", "none") == "none"


def _break_500(app, key):
    app.fail_with(key, 500)


def _break_timeout(app, key):
    app.delay(key, 3.0)


def _break_truncated(app, key):
    app.truncate(key)


def _break_not_json(app, key):
    app.serve_body(key, "<html><body>Service Unavailable</body></html>")


def _break_wrong_shape(app, key):
    app.serve_body(key, '{"f": 12, "p": "nope"}')


def _break_empty_200(app, key):
    app.serve_body(key, "")


FAILURES = {
    "status-500": _break_500,
    "timeout": _break_timeout,
    "truncated-body": _break_truncated,
    "invalid-json": _break_not_json,
    "wrong-shape-json": _break_wrong_shape,
    "empty-200": _break_empty_200,
}


@pytest.mark.parametrize("failure", list(FAILURES.values()), ids=list(FAILURES))
async def test_a_failure_keeps_the_last_good_config_then_recovers(cdn, hooks, failure):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, read_timeout=0.5,
        **hooks.kwargs(),
    )
    async with client:
        assert (await client.refresh()).is_success
        good = client.snapshot()
        cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
        failure(cdn.app, ONBOARDING_KEY)

        with anyio.fail_after(3):
            failed = await client.refresh()
        assert not failed.is_success and failed.error
        assert hooks.errors
        assert await client.get_value("premiumBadge", None) is False
        kept = client.snapshot()
        assert (kept.config, kept.etag, kept.fetch_time) == (
            good.config, good.etag, good.fetch_time
        )

        cdn.app.fix(ONBOARDING_KEY)
        assert (await client.refresh()).is_success
        assert await client.get_value("premiumBadge", None) is True


async def test_auto_poll_goes_on_after_failures(cdn, hooks):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    polling = AutoPoll(interval=1, max_init_wait=5)
    client = Client(ONBOARDING_KEY, polling=polling, base_url=cdn.url, **hooks.kwargs())
    async with client:
        assert await client.get_value("premiumBadge", None) is False
        cdn.app.fail_with(ONBOARDING_KEY, 500)
        await wait_until(lambda: hooks.errors, 3)
        assert await client.get_value("premiumBadge", None) is False

        cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
        cdn.app.fix(ONBOARDING_KEY)
        with anyio.fail_after(3):
            while not await client.get_value("premiumBadge", None):
                await anyio.sleep(0.02)


async def test_a_closed_port_keeps_the_cached_config_then_recovers(hooks):
    port = free_port()
    cache = MemoryCache()
    hour_ago_ms = int((time.time() - 3600) * 1000)
    entry = cache_entry(ONBOARDING_TEXT, '"cached"', hour_ago_ms)
    await cache.set(configcat_cache_key(ONBOARDING_KEY), entry)
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=f"http://127.0.0.1:{port}",
        cache=cache, connect_timeout=1, **hooks.kwargs(),
    )
    async with client:
        assert await client.get_value("premiumBadge", None) is False
        with anyio.fail_after(3):
            failed = await client.refresh()
        assert not failed.is_success and failed.error
        assert hooks.errors
        assert await client.get_value("premiumBadge", None) is False
        assert client.snapshot().etag == '"cached"'

        with serve(FakeCDN(), port=port) as server:
            server.app.publish(ONBOARDING_KEY, BADGE_ON)
            assert (await client.refresh()).is_success
            assert await client.get_value("premiumBadge", None) is True
            [request] = server.app.requests_for(ONBOARDING_KEY)
            assert request.headers["if-none-match"] == '"cached"'


@pytest.mark.parametrize("status", [403, 404], ids=["403", "404"])
async def test_a_wrong_key_is_reported_and_the_config_kept(cdn, hooks, status):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, **hooks.kwargs()
    )
    async with client:
        assert (await client.refresh()).is_success
        good = client.snapshot()
        cdn.app.fail_with(ONBOARDING_KEY, status)
        failed = await client.refresh()
        kept = client.snapshot()
        value = await client.get_value("premiumBadge", None)

    assert not failed.is_success and str(status) in failed.error
    assert str(status) in hooks.error_text()
    assert value is False
    assert kept.config is good.config
    # a wrong key is not retried before the next interval: the fetch time moves
    assert kept.fetch_time > good.fetch_time


async def test_a_wrong_key_without_a_config_serves_defaults(cdn, hooks):
    # nothing is published: the fake CDN answers 404
    client = Client(
        ONBOARDING_KEY, polling=AutoPoll(max_init_wait=3), base_url=cdn.url,
        **hooks.kwargs(),
    )
    async with client:
        with anyio.fail_after(3):
            details = await client.get_value_details("premiumBadge", "default")

    assert details.value == "default"
    assert details.error_code == ErrorCode.CONFIG_JSON_NOT_AVAILABLE
    assert "404" in hooks.error_text()


async def test_a_new_config_without_etag_is_noticed(cdn, hooks):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    cdn.app.omit_etag(ONBOARDING_KEY)
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, **hooks.kwargs()
    )
    async with client:
        assert (await client.refresh()).is_success
        cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
        assert (await client.refresh()).is_success
        assert await client.get_value("premiumBadge", None) is True

    assert len(hooks.changed) == 2
