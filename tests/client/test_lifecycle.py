"""
The client's life: SDK keys, one download for many callers, closing while a
download hangs, and offline mode.
"""

import time

import anyio
import httpx
import pytest

import flagstaff
from cdn import (
    MATRIX_KEY,
    MATRIX_TEXT,
    cache_entry,
    configcat_cache_key,
    wait_until,
    with_default,
)
from flagstaff import AutoPoll, Client, ErrorCode, LazyLoad, ManualPoll, MemoryCache

pytestmark = pytest.mark.anyio

LEGACY_KEY = "PKDVCLf-Hq-h-kCzMp-L7Q/psuH7BGHoUmdONrzzUOY7A"


@pytest.mark.parametrize(
    "sdk_key",
    ["", "configcat-sdk-1/short/key", "no-slash-at-all", "configcat-proxy/my-proxy"],
    ids=["empty", "short", "no-slash", "proxy-without-base-url"],
)
def test_malformed_sdk_keys_are_refused(sdk_key):
    with pytest.raises(ValueError):
        Client(sdk_key)


async def test_legacy_and_proxy_keys_are_downloaded(cdn):
    cdn.app.publish(LEGACY_KEY, MATRIX_TEXT)
    cdn.app.publish("configcat-proxy/my-proxy", MATRIX_TEXT)
    for sdk_key in (LEGACY_KEY, "configcat-proxy/my-proxy"):
        async with Client(sdk_key, polling=ManualPoll(), base_url=cdn.url) as client:
            assert (await client.refresh()).is_success
            assert await client.get_value("keySampleText", "none") == "Cat"
        [request] = cdn.app.requests_for(sdk_key)
        assert request.path == f"/configuration-files/{sdk_key}/config_v6.json"


async def test_the_client_is_used_inside_async_with(cdn):
    client = Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url)
    with pytest.raises(flagstaff.ClientClosedError):
        await client.get_value("keySampleText", "none")
    async with client:
        pass
    with pytest.raises(flagstaff.ClientClosedError):
        await client.refresh()
    assert cdn.app.requests == []


@pytest.mark.parametrize(
    "polling",
    [AutoPoll(interval=60, max_init_wait=5), LazyLoad(ttl=60)],
    ids=["auto", "lazy"],
)
async def test_a_thousand_first_calls_make_one_request(cdn, polling):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cdn.app.delay(MATRIX_KEY, 0.3)
    values = []

    async def evaluate():
        values.append(await client.get_value("keySampleText", "none"))

    with anyio.fail_after(10):
        async with Client(MATRIX_KEY, polling=polling, base_url=cdn.url) as client:
            async with anyio.create_task_group() as group:
                for _ in range(1000):
                    group.start_soon(evaluate)

    assert values == ["Cat"] * 1000
    assert len(cdn.app.requests_for(MATRIX_KEY)) == 1


async def test_concurrent_refreshes_share_one_download(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cdn.app.delay(MATRIX_KEY, 0.3)
    results = []

    async def refresh():
        results.append(await client.refresh())

    with anyio.fail_after(5):
        async with Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url) as client:
            async with anyio.create_task_group() as group:
                for _ in range(50):
                    group.start_soon(refresh)

    assert all(result.is_success for result in results) and len(results) == 50
    assert len(cdn.app.requests_for(MATRIX_KEY)) == 1


async def test_aclose_during_a_hanging_download_returns_promptly(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cdn.app.hang(MATRIX_KEY)
    polling = AutoPoll(interval=60, max_init_wait=10)

    with anyio.fail_after(3):
        async with Client(MATRIX_KEY, polling=polling, base_url=cdn.url) as client:
            await wait_until(lambda: cdn.app.arrived_for(MATRIX_KEY), 2)
            start = time.monotonic()
            await client.aclose()
            closing = time.monotonic() - start

    assert closing < 1.0


async def test_aclose_can_be_bounded_by_a_cancel_scope(cdn):
    # The natural way to bound closing: a cancel scope around aclose().
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cdn.app.hang(MATRIX_KEY)
    polling = AutoPoll(interval=60, max_init_wait=10)

    async with Client(MATRIX_KEY, polling=polling, base_url=cdn.url) as client:
        await wait_until(lambda: cdn.app.arrived_for(MATRIX_KEY), 2)
        with anyio.fail_after(2):
            await client.aclose()
        with pytest.raises(flagstaff.ClientClosedError):
            await client.refresh()


async def test_code_after_aclose_inside_the_block_is_not_cancelled(cdn):
    # Closing stops the client's work, not the caller's.
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    reached = []
    with anyio.fail_after(3):
        client = Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url)
        async with client:
            await client.refresh()
            await client.aclose()
            await anyio.sleep(0.05)
            reached.append("after aclose")

    assert reached == ["after aclose"]


async def test_aclose_right_after_entering_is_clean(cdn):
    # the poll task has not started its first download yet
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    with anyio.fail_after(3):
        async with Client(MATRIX_KEY, base_url=cdn.url) as client:
            await client.aclose()


async def test_aclose_from_another_task_ends_the_client(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cdn.app.hang(MATRIX_KEY)
    polling = AutoPoll(interval=60, max_init_wait=10)

    with anyio.fail_after(3):
        async with Client(MATRIX_KEY, polling=polling, base_url=cdn.url) as client:
            await wait_until(lambda: cdn.app.arrived_for(MATRIX_KEY), 2)
            async with anyio.create_task_group() as group:
                group.start_soon(client.aclose)
            assert client.snapshot().config is None


async def test_pending_calls_end_promptly_when_the_client_closes(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cdn.app.hang(MATRIX_KEY)
    polling = AutoPoll(interval=60, max_init_wait=10)
    outcomes = []

    async def evaluate():
        try:
            outcomes.append(await client.get_value("keySampleText", "none"))
        except flagstaff.ClientClosedError as exc:
            outcomes.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            async with Client(MATRIX_KEY, polling=polling, base_url=cdn.url) as client:
                group.start_soon(evaluate)
                await wait_until(lambda: cdn.app.arrived_for(MATRIX_KEY), 2)
                await anyio.sleep(0.05)
            closed = time.monotonic()
            with anyio.move_on_after(2):
                while not outcomes:
                    await anyio.sleep(0.01)
            ended_after = time.monotonic() - closed
            group.cancel_scope.cancel()

    assert outcomes, "a get_value waiting for the first config outlived aclose() by 2 s"
    assert outcomes[0] == "none" or isinstance(outcomes[0], flagstaff.ClientClosedError)
    assert ended_after < 1.0


async def test_a_refresh_cut_short_by_aclose_is_not_a_success(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    results = []

    async def refresh():
        try:
            results.append(await client.refresh())
        except flagstaff.ClientClosedError as exc:
            results.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            client = Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url)
            async with client:
                assert (await client.refresh()).is_success
                cdn.app.hang(MATRIX_KEY)
                group.start_soon(refresh)
                await wait_until(lambda: cdn.app.arrived_for(MATRIX_KEY) == 2, 2)

    [result] = results
    assert isinstance(result, flagstaff.ClientClosedError) or not result.is_success


async def test_offline_makes_no_request_and_serves_the_cache(cdn, hooks):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cache = MemoryCache()
    entry = cache_entry(MATRIX_TEXT, '"from-cache"', int((time.time() - 600) * 1000))
    await cache.set(configcat_cache_key(MATRIX_KEY), entry)

    modes = (AutoPoll(interval=60, max_init_wait=5), LazyLoad(ttl=1), ManualPoll())
    for polling in modes:
        client = Client(
            MATRIX_KEY, polling=polling, base_url=cdn.url, cache=cache, offline=True,
            **hooks.kwargs(),
        )
        with anyio.fail_after(2):
            async with client:
                assert await client.get_value("keySampleText", "none") == "Cat"
                refreshed = await client.refresh()
                snap = client.snapshot()
        assert not refreshed.is_success and refreshed.error
        assert snap.etag == '"from-cache"'
        # the age is the writer's: offline readers honour it
        assert 590 < snap.age < 700

    assert cdn.app.requests == []


async def test_offline_without_a_cache_serves_defaults_at_once(cdn):
    polling = AutoPoll(interval=60, max_init_wait=5)
    with anyio.fail_after(1):
        async with Client(
            MATRIX_KEY, polling=polling, base_url=cdn.url, offline=True
        ) as client:
            details = await client.get_value_details("keySampleText", "none")

    assert details.value == "none"
    assert details.error_code == ErrorCode.CONFIG_JSON_NOT_AVAILABLE
    assert cdn.app.requests == []


async def test_a_cancelled_caller_does_not_abort_the_shared_download(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cdn.app.delay(MATRIX_KEY, 0.4)
    async with Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url) as client:
        with anyio.move_on_after(0.1) as scope:
            await client.refresh()
        assert scope.cancelled_caught
        await wait_until(lambda: client.snapshot().config is not None, 2)
        assert await client.get_value("keySampleText", "none") == "Cat"

    assert len(cdn.app.requests_for(MATRIX_KEY)) == 1


async def test_the_callers_http_client_is_used_and_left_open(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    async with httpx.AsyncClient(headers={"X-Test-Client": "mine"}) as http:
        client = Client(
            MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url, http_client=http
        )
        async with client:
            assert (await client.refresh()).is_success
        assert not http.is_closed
        assert (await http.get(cdn.url + "/elsewhere")).status_code == 404

    [request] = cdn.app.requests_for(MATRIX_KEY)
    assert request.headers["x-test-client"] == "mine"


async def test_a_snapshot_keeps_its_config_after_a_new_one_arrives(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    async with Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url) as client:
        await client.refresh()
        old = client.snapshot()
        cdn.app.publish(MATRIX_KEY, with_default(MATRIX_TEXT, "keySampleText", "Dog"))
        await client.refresh()
        new = client.snapshot()

    assert old.get_value("keySampleText", "none") == "Cat"
    assert new.get_value("keySampleText", "none") == "Dog"
    assert old.etag != new.etag


@pytest.mark.parametrize(
    "polling", [AutoPoll(interval=60, max_init_wait=5), LazyLoad(ttl=60), ManualPoll()],
    ids=["auto", "lazy", "manual"],
)
async def test_a_fresh_cache_entry_saves_the_download(cdn, polling):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cache = MemoryCache()
    entry = cache_entry(MATRIX_TEXT, '"fresh"', int(time.time() * 1000))
    await cache.set(configcat_cache_key(MATRIX_KEY), entry)
    client = Client(MATRIX_KEY, polling=polling, base_url=cdn.url, cache=cache)
    async with client:
        assert await client.get_value("keySampleText", "none") == "Cat"
        await anyio.sleep(0.2)

    assert cdn.app.requests == []


async def test_an_error_in_the_block_propagates_as_it_was_raised(cdn):
    # Not wrapped in an exception group by the client's task group.
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    with pytest.raises(KeyError, match="raised in the block"):
        async with Client(MATRIX_KEY, polling=AutoPoll(interval=60),
                          base_url=cdn.url) as client:
            await client.get_value("keySampleText", None)
            raise KeyError("raised in the block")
