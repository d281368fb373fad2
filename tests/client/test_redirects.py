"""
Redirects asked for by a config's preferences (``p.u``, ``p.r``) between two
fake CDNs. The tests always give a ``base_url``, so only ``r == 2`` (forced)
moves the client; ``r`` 0 and 1 are ignored.
"""

import json

import anyio
import httpx
import pytest

from cdn import ONBOARDING_KEY, ONBOARDING_TEXT, with_default, with_redirect
from flagstaff import Client, DataGovernance, ManualPoll

pytestmark = pytest.mark.anyio

#: what the second CDN serves, told apart by the badge
SECOND = with_default(ONBOARDING_TEXT, "premiumBadge", True)


def count(server) -> int:
    return len(server.app.requests_for(ONBOARDING_KEY))


async def test_a_forced_redirect_moves_the_client_to_the_other_cdn(cdn, cdn2, hooks):
    cdn.app.publish(ONBOARDING_KEY, with_redirect(ONBOARDING_TEXT, cdn2.url, 2))
    cdn2.app.publish(ONBOARDING_KEY, with_redirect(SECOND, cdn2.url, 0))
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, **hooks.kwargs()
    )
    async with client:
        assert (await client.refresh()).is_success
        assert await client.get_value("premiumBadge", None) is True
        assert (count(cdn), count(cdn2)) == (1, 1)

        # and every later download goes to the other CDN directly
        assert (await client.refresh()).is_success
        assert (count(cdn), count(cdn2)) == (1, 2)

    assert not hooks.errors


async def test_a_forced_redirect_with_a_trailing_slash(cdn, cdn2):
    cdn.app.publish(ONBOARDING_KEY, with_redirect(ONBOARDING_TEXT, cdn2.url + "/", 2))
    cdn2.app.publish(ONBOARDING_KEY, with_redirect(SECOND, cdn2.url, 0))
    async with Client(ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url) as client:
        assert (await client.refresh()).is_success
        assert await client.get_value("premiumBadge", None) is True

    [request] = cdn2.app.requests_for(ONBOARDING_KEY)
    assert request.path == f"/configuration-files/{ONBOARDING_KEY}/config_v6.json"


@pytest.mark.parametrize("redirect", [0, 1], ids=["r0", "r1"])
async def test_an_unforced_redirect_is_ignored_with_a_base_url(cdn, cdn2, redirect):
    cdn.app.publish(ONBOARDING_KEY, with_redirect(ONBOARDING_TEXT, cdn2.url, redirect))
    cdn2.app.publish(ONBOARDING_KEY, SECOND)
    async with Client(ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url) as client:
        assert (await client.refresh()).is_success
        assert await client.get_value("premiumBadge", None) is False
        assert (await client.refresh()).is_success

    assert (count(cdn), count(cdn2)) == (2, 0)


async def test_a_redirect_loop_is_bounded_reported_and_serves_a_config(
    cdn, cdn2, hooks
):
    first = with_redirect(ONBOARDING_TEXT, cdn2.url, 2)
    second = with_redirect(SECOND, cdn.url, 2)
    cdn.app.publish(ONBOARDING_KEY, first)
    cdn2.app.publish(ONBOARDING_KEY, second)
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, **hooks.kwargs()
    )
    async with client:
        with anyio.fail_after(5):
            await client.refresh()
        # one request and at most two redirects
        assert count(cdn) + count(cdn2) == 3
        assert "redirect" in hooks.error_text().lower()
        assert await client.get_value("premiumBadge", None) in (False, True)
        served = json.loads(client.snapshot().text)
        assert served in (json.loads(first), json.loads(second))

        # a 304 on the way may end the next loop early, but never later
        with anyio.fail_after(5):
            await client.refresh()
        assert 3 < count(cdn) + count(cdn2) <= 6


# -- ConfigCat's own CDNs, answered in-process ---------------------------------
# Without a base_url the client talks to ConfigCat's CDN; these tests answer
# it with httpx.MockTransport so that nothing leaves the process.

GLOBAL = "https://cdn-global.configcat.com"
EU = "https://cdn-eu.configcat.com"


class FakeConfigCat:
    """
    ConfigCat's two CDNs in one MockTransport handler: each serves the text
    it is given, and every URL asked for is recorded.
    """

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts
        self.urls: list[str] = []

    def __call__(self, request):
        self.urls.append(str(request.url))
        base = f"{request.url.scheme}://{request.url.host}"
        return httpx.Response(200, text=self.texts[base], headers={"ETag": f'"{base}"'})

    def bases(self) -> list[str]:
        return [url.split("/configuration-files/")[0] for url in self.urls]


async def served_by(handler, **options):
    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport) as http:
        client = Client(
            ONBOARDING_KEY, polling=ManualPoll(), http_client=http, **options
        )
        async with client:
            assert (await client.refresh()).is_success
            first = await client.get_value("premiumBadge", None)
            assert (await client.refresh()).is_success
    return first


async def test_the_global_cdn_is_the_default():
    handler = FakeConfigCat({GLOBAL: with_redirect(ONBOARDING_TEXT, GLOBAL, 0)})
    assert await served_by(handler) is False
    assert handler.urls == [
        f"{GLOBAL}/configuration-files/{ONBOARDING_KEY}/config_v6.json"
    ] * 2


async def test_eu_only_data_governance_asks_the_eu_cdn():
    handler = FakeConfigCat({EU: with_redirect(ONBOARDING_TEXT, EU, 0)})
    assert await served_by(handler, data_governance=DataGovernance.EU_ONLY) is False
    assert handler.bases() == [EU, EU]


async def test_a_data_governance_redirect_downloads_again_from_the_eu(hooks):
    handler = FakeConfigCat({
        GLOBAL: with_redirect(ONBOARDING_TEXT, EU, 1),
        EU: with_redirect(SECOND, EU, 0),
    })
    assert await served_by(handler, **hooks.kwargs()) is True
    assert handler.bases() == [GLOBAL, EU, EU]


async def test_a_redirect_with_r0_moves_later_downloads_only():
    handler = FakeConfigCat({
        GLOBAL: with_redirect(ONBOARDING_TEXT, EU, 0),
        EU: with_redirect(SECOND, EU, 0),
    })
    assert await served_by(handler) is False
    assert handler.bases() == [GLOBAL, EU]
