"""
When each polling mode downloads: AutoPoll on its interval, LazyLoad when the
config is older than its TTL, ManualPoll only on ``refresh()``.
"""

import anyio
import pytest

from cdn import ONBOARDING_KEY, ONBOARDING_TEXT, wait_until, with_default
from flagstaff import AutoPoll, Client, ErrorCode, LazyLoad, ManualPoll

pytestmark = pytest.mark.anyio

BADGE_ON = with_default(ONBOARDING_TEXT, "premiumBadge", True)


def count(cdn) -> int:
    return len(cdn.app.requests_for(ONBOARDING_KEY))


@pytest.mark.parametrize(
    "mode", [AutoPoll(), LazyLoad(), ManualPoll()], ids=["auto", "lazy", "manual"]
)
def test_polling_modes_have_configcat_defaults(mode):
    assert getattr(mode, "interval", 60) == 60
    assert getattr(mode, "max_init_wait", 5) == 5
    assert getattr(mode, "ttl", 60) == 60


@pytest.mark.parametrize(
    "make",
    [
        lambda: AutoPoll(interval=0.5),
        lambda: AutoPoll(max_init_wait=-1),
        lambda: LazyLoad(ttl=0),
    ],
    ids=["auto-interval", "auto-init-wait", "lazy-ttl"],
)
def test_polling_modes_refuse_out_of_range_values(make):
    with pytest.raises(ValueError):
        make()


async def test_auto_poll_downloads_every_interval(cdn):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    polling = AutoPoll(interval=1, max_init_wait=5)
    async with Client(ONBOARDING_KEY, polling=polling, base_url=cdn.url):
        await wait_until(lambda: count(cdn) >= 3, 3.5)

    times = [request.time for request in cdn.app.requests_for(ONBOARDING_KEY)]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert all(0.8 <= gap <= 1.5 for gap in gaps), gaps


async def test_auto_poll_stops_when_the_client_closes(cdn):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    polling = AutoPoll(interval=1, max_init_wait=5)
    async with Client(ONBOARDING_KEY, polling=polling, base_url=cdn.url) as client:
        await client.get_value("premiumBadge", None)
    made = count(cdn)
    await anyio.sleep(1.3)

    assert count(cdn) == made == 1


async def test_lazy_load_downloads_again_after_the_ttl(cdn):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    client = Client(ONBOARDING_KEY, polling=LazyLoad(ttl=1), base_url=cdn.url)
    async with client:
        assert count(cdn) == 0
        assert await client.get_value("premiumBadge", None) is False
        assert await client.get_value("premiumBadge", None) is False
        assert count(cdn) == 1

        cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
        assert await client.get_value("premiumBadge", None) is False
        await anyio.sleep(1.1)
        assert await client.get_value("premiumBadge", None) is True
        assert count(cdn) == 2

    assert cdn.app.requests_for(ONBOARDING_KEY)[1].headers["if-none-match"]


async def test_manual_poll_downloads_only_on_refresh(cdn):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    async with Client(ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url) as client:
        with anyio.fail_after(1):
            details = await client.get_value_details("premiumBadge", "default")
        assert details.error_code == ErrorCode.CONFIG_JSON_NOT_AVAILABLE
        assert count(cdn) == 0

        assert (await client.refresh()).is_success
        assert await client.get_value("premiumBadge", None) is False
        cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
        await anyio.sleep(0.3)
        assert await client.get_value("premiumBadge", None) is False
        assert count(cdn) == 1

        assert (await client.refresh()).is_success
        assert await client.get_value("premiumBadge", None) is True
        assert count(cdn) == 2
