"""
The config cache in ConfigCat's format, shared with configcat-client: what
flagstaff writes, configcat-client reads, and the other way round.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import configcatclient
import pytest
from configcatclient.configcatoptions import ConfigCatOptions
from configcatclient.configentry import ConfigEntry
from configcatclient.interfaces import ConfigCache
from configcatclient.pollingmode import PollingMode

from cdn import (
    MATRIX_KEY,
    MATRIX_TEXT,
    ONBOARDING_KEY,
    ONBOARDING_TEXT,
    cache_entry,
    configcat_cache_key,
    etag_of,
    wait_until,
    with_default,
)
from flagstaff import AutoPoll, Client, FileCache, ManualPoll, MemoryCache, User

pytestmark = pytest.mark.anyio

BADGE_ON = with_default(ONBOARDING_TEXT, "premiumBadge", True)
PREMIUM = User("u1", custom={"plan": "premium"})


class DirectoryCache(ConfigCache):
    """
    configcat-client's side of a :class:`flagstaff.FileCache`: one file per
    key in a directory.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, key):
        file = self.directory / key
        return file.read_text(encoding="utf-8") if file.exists() else None

    def set(self, key, value):
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / key).write_text(value, encoding="utf-8")


def configcat(sdk_key: str, base_url: str, directory: Path, offline: bool):
    options = ConfigCatOptions(
        base_url=base_url,
        polling_mode=PollingMode.manual_poll(),
        config_cache=DirectoryCache(directory),
        offline=offline,
    )
    return configcatclient.get(sdk_key, options)


def parse(entry: str) -> tuple[int, str, str]:
    fetch_time, etag, text = entry.split("\n", 2)
    return int(fetch_time), etag, text


async def test_the_cache_entry_is_configcats(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cache = MemoryCache()
    client = Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url, cache=cache)
    async with client:
        before_ms = int(time.time() * 1000)
        assert (await client.refresh()).is_success
        after_ms = int(time.time() * 1000)
        fetch_time = client.snapshot().fetch_time

    entry = await cache.get(configcat_cache_key(MATRIX_KEY))
    assert entry is not None
    fetch_ms, etag, text = parse(entry)
    assert before_ms <= fetch_ms <= after_ms
    assert abs(fetch_ms - fetch_time.timestamp() * 1000) < 1
    assert etag == etag_of(MATRIX_TEXT)
    assert text == MATRIX_TEXT
    assert entry == cache_entry(MATRIX_TEXT, etag, fetch_ms)
    # and configcat-client's own parser takes it
    parsed = ConfigEntry.create_from_string(entry)
    assert (parsed.etag, parsed.config_json_string) == (etag, MATRIX_TEXT)


async def test_the_cache_key_of_the_specification(cdn):
    sdk_key = "configcat-sdk-1/AAAAAAAAAAAAAAAAAAAAAA/BBBBBBBBBBBBBBBBBBBBBB"
    cdn.app.publish(sdk_key, MATRIX_TEXT)
    cache = MemoryCache()
    client = Client(sdk_key, polling=ManualPoll(), base_url=cdn.url, cache=cache)
    async with client:
        await client.refresh()

    assert await cache.get("127138bb128840ac4d9830ffd78015b88ef6e5e5") is not None


async def test_a_304_rewrites_the_cache_with_a_new_fetch_time(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cache = MemoryCache()
    client = Client(MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url, cache=cache)
    async with client:
        await client.refresh()
        first = parse(await cache.get(configcat_cache_key(MATRIX_KEY)))
        await anyio.sleep(0.05)
        await client.refresh()
        second = parse(await cache.get(configcat_cache_key(MATRIX_KEY)))

    assert [r.status for r in cdn.app.requests_for(MATRIX_KEY)] == [200, 304]
    assert second[1:] == first[1:]
    assert second[0] > first[0]


async def test_configcat_client_reads_what_flagstaff_writes(cdn, tmp_path):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    cache = FileCache(tmp_path)
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, cache=cache
    )
    reader = configcat(ONBOARDING_KEY, cdn.url, tmp_path, offline=True)
    try:
        async with client:
            assert (await client.refresh()).is_success
            assert os.listdir(tmp_path) == [configcat_cache_key(ONBOARDING_KEY)]
            assert reader.get_value("premiumBadge", None) is False
            assert reader.get_value("premiumBadge", None, _configcat_user()) is True
            details = reader.get_value_details("onboardingFeature", "x")
            fetched = client.snapshot().fetch_time
            assert abs(details.fetch_time.timestamp() - fetched.timestamp()) < 0.002

            # a later download is seen by the reader at its next evaluation
            cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
            assert (await client.refresh()).is_success
            assert reader.get_value("premiumBadge", None) is True
    finally:
        reader.close()

    assert len(cdn.app.requests_for(ONBOARDING_KEY)) == 2


def _configcat_user():
    return configcatclient.user.User("u1", custom={"plan": "premium"})


async def test_flagstaff_reads_what_configcat_client_writes(cdn, tmp_path):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    writer = configcat(ONBOARDING_KEY, cdn.url, tmp_path, offline=False)
    try:
        refreshed = await anyio.to_thread.run_sync(writer.force_refresh)
    finally:
        writer.close()
    assert refreshed.is_success
    written = (tmp_path / configcat_cache_key(ONBOARDING_KEY)).read_text()
    written_ms, etag, _ = parse(written)

    client = Client(
        ONBOARDING_KEY, polling=AutoPoll(interval=60), base_url=cdn.url,
        cache=FileCache(tmp_path), offline=True,
    )
    async with client:
        assert await client.get_value("premiumBadge", None) is False
        assert await client.get_value("premiumBadge", None, PREMIUM) is True
        snap = client.snapshot()

    assert snap.etag == etag == etag_of(ONBOARDING_TEXT)
    assert snap.text == ONBOARDING_TEXT
    assert abs(snap.fetch_time.timestamp() * 1000 - written_ms) < 1
    assert len(cdn.app.requests_for(ONBOARDING_KEY)) == 1


async def test_an_online_client_revalidates_the_shared_entry(cdn, tmp_path):
    # configcat-client downloaded the config; flagstaff asks only whether it
    # changed, and the CDN says 304
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    writer = configcat(ONBOARDING_KEY, cdn.url, tmp_path, offline=False)
    try:
        assert (await anyio.to_thread.run_sync(writer.force_refresh)).is_success
    finally:
        writer.close()

    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url,
        cache=FileCache(tmp_path),
    )
    async with client:
        assert await client.get_value("premiumBadge", None) is False
        assert (await client.refresh()).is_success

    writer_request, flagstaff_request = cdn.app.requests_for(ONBOARDING_KEY)
    assert flagstaff_request.headers["if-none-match"] == etag_of(ONBOARDING_TEXT)
    assert flagstaff_request.status == 304


async def test_an_offline_reader_follows_a_writer_in_the_same_cache(cdn, tmp_path):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    writer = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url,
        cache=FileCache(tmp_path),
    )
    reader = Client(
        ONBOARDING_KEY, polling=AutoPoll(interval=1, max_init_wait=5),
        base_url=cdn.url, cache=FileCache(tmp_path), offline=True,
    )
    async with writer:
        await writer.refresh()
        async with reader:
            assert await reader.get_value("premiumBadge", None) is False
            cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
            await writer.refresh()
            with anyio.fail_after(2.5):
                while not await reader.get_value("premiumBadge", None):
                    await anyio.sleep(0.02)

    assert len(cdn.app.requests_for(ONBOARDING_KEY)) == 2


class _BrokenCache:
    async def get(self, key):
        raise OSError("the cache is down")

    async def set(self, key, value):
        raise OSError("the cache is down")


BAD_ENTRIES = {
    "garbage": "garbage",
    "empty-etag": '12\n\n{"f": {}}',
    "bad-time": 'x\n"e"\n{"f": {}}',
    "bad-json": '1\n"e"\n{not json',
}


async def _client_over(cdn, hooks, cache_value):
    if cache_value is None:
        cache = _BrokenCache()
    else:
        cache = MemoryCache()
        await cache.set(configcat_cache_key(MATRIX_KEY), cache_value)
    return Client(
        MATRIX_KEY, polling=AutoPoll(max_init_wait=5), base_url=cdn.url, cache=cache,
        **hooks.kwargs(),
    )


@pytest.mark.parametrize(
    "cache_value", [None, *BAD_ENTRIES.values()], ids=["broken-cache", *BAD_ENTRIES]
)
async def test_a_bad_cache_does_not_stop_the_cdn_from_serving(cdn, hooks, cache_value):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    client = await _client_over(cdn, hooks, cache_value)
    with anyio.fail_after(5):
        async with client:
            assert await client.get_value("keySampleText", "none") == "Cat"


@pytest.mark.parametrize(
    "cache_value", [None, *BAD_ENTRIES.values()], ids=["broken-cache", *BAD_ENTRIES]
)
async def test_a_bad_cache_is_reported(cdn, hooks, cache_value):
    # configcat-client reports every unreadable entry (error 2200)
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    client = await _client_over(cdn, hooks, cache_value)
    async with client:
        await client.get_value("keySampleText", "none")

    assert "cache" in hooks.error_text()


# configcat-client in a process of its own, sharing the cache directory.
_CONFIGCAT_PROCESS = """
import sys
from pathlib import Path

import configcatclient
from configcatclient.configcatoptions import ConfigCatOptions
from configcatclient.interfaces import ConfigCache
from configcatclient.pollingmode import PollingMode
from configcatclient.user import User


class DirectoryCache(ConfigCache):
    def __init__(self, directory):
        self.directory = Path(directory)

    def get(self, key):
        file = self.directory / key
        return file.read_text(encoding="utf-8") if file.exists() else None

    def set(self, key, value):
        (self.directory / key).write_text(value, encoding="utf-8")


sdk_key, base_url, directory, mode = sys.argv[1:5]
client = configcatclient.get(sdk_key, ConfigCatOptions(
    base_url=base_url, polling_mode=PollingMode.manual_poll(),
    config_cache=DirectoryCache(directory), offline=mode == "read"))
if mode == "write":
    assert client.force_refresh().is_success
premium = User("u1", custom={"plan": "premium"})
print(client.get_value("premiumBadge", None, premium), client.get_value("premiumBadge", None))
client.close()
"""


async def _configcat_process(sdk_key, base_url, directory, mode):
    done = await anyio.run_process(
        [sys.executable, "-c", _CONFIGCAT_PROCESS, sdk_key, base_url,
         os.fspath(directory), mode],
        check=True,
    )
    return done.stdout.decode().split()


async def test_a_configcat_client_process_shares_the_cache(cdn, tmp_path):
    # flagstaff downloads and writes; another process's configcat-client,
    # offline, serves what flagstaff wrote.
    cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
    async with Client(ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url,
                      cache=FileCache(tmp_path)) as client:
        assert (await client.refresh()).is_success
    with anyio.fail_after(60):
        read = await _configcat_process(ONBOARDING_KEY, cdn.url, tmp_path, "read")
    assert read == ["True", "True"]

    # the other way round: that process downloads and writes a new config,
    # and an offline flagstaff client serves it
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    with anyio.fail_after(60):
        written = await _configcat_process(ONBOARDING_KEY, cdn.url, tmp_path, "write")
    assert written == ["True", "False"]
    async with Client(ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url,
                      cache=FileCache(tmp_path), offline=True) as client:
        assert await client.get_value("premiumBadge", None) is False
        assert await client.get_value("premiumBadge", None, PREMIUM) is True
        assert client.snapshot().etag == etag_of(ONBOARDING_TEXT)


async def test_a_cached_config_serves_at_once_while_the_cdn_hangs(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    cdn.app.hang(MATRIX_KEY)
    cache = MemoryCache()
    stale = int((time.time() - 3600) * 1000)
    await cache.set(configcat_cache_key(MATRIX_KEY),
                    cache_entry(MATRIX_TEXT, '"old"', stale))
    client = Client(MATRIX_KEY, polling=AutoPoll(interval=60, max_init_wait=10),
                    base_url=cdn.url, cache=cache)
    async with client:
        started = time.monotonic()
        value = await client.get_value("keySampleText", "none")
        waited = time.monotonic() - started
        age = client.snapshot().age
    assert value != "none"
    assert waited < 1.0, f"the cached config waited {waited:.2f} s for the CDN"
    assert age > 3000
