"""
The client's on_flags_changed hook: called when a download replaced the
config with one serving something different, not for the first config nor
for new bytes serving the same; and chart annotations posted through it.
"""

from __future__ import annotations

import json

import pytest

from cdn import ONBOARDING_KEY, ONBOARDING_TEXT, wait_until, with_default
from fake_annotations import API_KEY, APP_ID, SECRET_KEY, annotator_options
from flagstaff import AutoPoll, Client, ConfigChange, ManualPoll
from flagstaff.amplitude import ChartAnnotator

pytestmark = pytest.mark.anyio

NAME = "..." + ONBOARDING_KEY[-6:]
BADGE_ON = with_default(ONBOARDING_TEXT, "premiumBadge", True)
FEATURE3 = with_default(ONBOARDING_TEXT, "onboardingFeature", "feature3")


async def test_a_refresh_that_changes_a_flag_tells_the_hook(cdn, hooks):
    changes: list[ConfigChange] = []
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    client = Client(ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url,
                    on_flags_changed=changes.append, **hooks.kwargs())
    async with client:
        assert (await client.refresh()).is_success
        assert changes == []                       # the first config

        cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
        assert (await client.refresh()).is_success
        (change,) = changes
        assert change.name == NAME and change.keys == ("premiumBadge",)
        assert change.label == (f"flagstaff {NAME}: premiumBadge → "
                                "plan EQUALS premium: true; otherwise true")

        # New bytes serving the same: a new config, but no flag changed.
        cdn.app.publish(ONBOARDING_KEY, json.dumps(json.loads(BADGE_ON), indent=1))
        assert (await client.refresh()).is_success
        assert len(hooks.changed) == 3
        assert len(changes) == 1
    assert not hooks.errors


async def test_a_hook_that_raises_is_reported_and_the_config_served(cdn, hooks):
    def broken(change):
        raise RuntimeError("the hook broke")

    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    client = Client(ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url,
                    on_flags_changed=broken, **hooks.kwargs())
    async with client:
        await client.refresh()
        cdn.app.publish(ONBOARDING_KEY, FEATURE3)
        assert (await client.refresh()).is_success
        assert await client.get_value("onboardingFeature", None) == "feature3"
    assert "the flags_changed hook raised" in hooks.error_text()


async def test_a_polling_client_annotates_amplitude_charts(cdn, annotation_api):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    annotator = ChartAnnotator(API_KEY, SECRET_KEY, APP_ID,
                               **annotator_options(annotation_api))
    async with annotator:
        client = Client(ONBOARDING_KEY, polling=AutoPoll(interval=1),
                        base_url=cdn.url, on_flags_changed=annotator.post_change)
        async with client:
            assert await client.get_value("onboardingFeature", None) == "default"
            cdn.app.publish(ONBOARDING_KEY, FEATURE3)
            await wait_until(lambda: annotation_api.app.stored(), 5)
        await annotator.flush()

    (request,) = annotation_api.app.posts()
    assert request.credentials == (API_KEY, SECRET_KEY)
    # The summary is too long for a label: it is cut there, whole in details.
    label = request.params["label"]
    assert label.startswith(f"flagstaff {NAME}: onboardingFeature → Free plan: ")
    assert len(label) == 120 and label.endswith("…")
    details = request.params["details"]
    assert details.startswith("onboardingFeature: Free plan: default 25%")
    assert details.endswith("; otherwise feature3")
