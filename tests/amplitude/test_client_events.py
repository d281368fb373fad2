"""
flagstaff.Client(..., emitter=...) records its evaluations: exposures (one
per user and variant, however often the flag is evaluated) or assignments.
The config comes from flagstaff's example through an offline cache; the
events go to the fake Amplitude on 127.0.0.1.
"""

from __future__ import annotations

import time
from importlib import resources

import anyio
import pytest

import flagstaff
from flagstaff.client import cache_key

pytestmark = pytest.mark.anyio

SDK_KEY = "configcat-sdk-1/flagstaff-test-onboard/onboarding-example-001"
EXAMPLE = (resources.files("flagstaff") / "examples" / "onboarding.json").read_text()


async def _offline_client(**options) -> flagstaff.Client:
    cache = flagstaff.MemoryCache()
    entry = f"{int(time.time() * 1000)}\n\"example\"\n{EXAMPLE}"
    await cache.set(cache_key(SDK_KEY), entry)
    return flagstaff.Client(SDK_KEY, polling=flagstaff.ManualPoll(), cache=cache,
                            offline=True, **options)


async def test_each_user_and_variant_is_one_exposure(make_emitter, amplitude):
    users = [flagstaff.User(f"user-{i:04d}", custom={"plan": "free"}) for i in range(20)]
    async with make_emitter() as emitter:
        async with await _offline_client(emitter=emitter) as client:
            served = {}
            for _ in range(50):             # every user evaluated 50 times
                for user in users:
                    served[user.identifier] = await client.get_value(
                        "onboardingFeature", "default", user)
        with anyio.fail_after(10):
            await emitter.flush()

    exposures = [event for event in amplitude.app.ingested_events()
                 if event["event_type"] == "$exposure"]
    assert sorted(event["user_id"] for event in exposures) == sorted(served)
    for event in exposures:
        assert event["event_properties"]["flag_key"] == "onboardingFeature"
        assert event["event_properties"]["variant"] == served[event["user_id"]]


async def test_assignments_carry_every_flag_of_get_all_values(make_emitter, amplitude):
    user = flagstaff.User("user-0042", custom={"plan": "premium"})
    async with make_emitter() as emitter:
        async with await _offline_client(emitter=emitter,
                                         evaluation_events="assignments") as client:
            values = await client.get_all_values(user)
        with anyio.fail_after(10):
            await emitter.flush()

    [assignment] = [event for event in amplitude.app.ingested_events()
                    if event["event_type"] != "$exposure"]
    assert assignment["user_id"] == "user-0042"
    assert values == {"onboardingFeature": "default", "premiumBadge": True}


async def test_no_events_when_told_none(make_emitter, amplitude):
    async with make_emitter() as emitter:
        async with await _offline_client(emitter=emitter, evaluation_events=None) as client:
            await client.get_value("onboardingFeature", "default",
                                   flagstaff.User("user-0043", custom={"plan": "free"}))
        with anyio.fail_after(10):
            await emitter.flush()
    assert amplitude.app.ingested_events() == []


def test_evaluation_events_are_checked():
    with pytest.raises(ValueError, match="evaluation_events"):
        flagstaff.Client(SDK_KEY, evaluation_events="clicks", emitter=object())
