"""
Hooks: on_ready once, on_config_changed per new config, on_flag_evaluated
per evaluation, on_error per error; a hook that raises is reported and does
not break anything.
"""

import pytest

import flagstaff
from cdn import ONBOARDING_KEY, ONBOARDING_TEXT, wait_until, with_default
from flagstaff import AutoPoll, Client, EvaluationDetails, ManualPoll, User

pytestmark = pytest.mark.anyio

BADGE_ON = with_default(ONBOARDING_TEXT, "premiumBadge", True)


def count(cdn) -> int:
    return len(cdn.app.requests_for(ONBOARDING_KEY))


async def test_on_ready_fires_once_and_on_config_changed_per_new_config(cdn, hooks):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    polling = AutoPoll(interval=1, max_init_wait=5)
    client = Client(ONBOARDING_KEY, polling=polling, base_url=cdn.url, **hooks.kwargs())
    async with client:
        await client.get_value("premiumBadge", None)
        assert len(hooks.ready) == 1
        assert len(hooks.changed) == 1
        [(config,)] = hooks.changed
        assert isinstance(config, flagstaff.Config)
        assert config.get_value("premiumBadge", None) is False

        # a 304 is no new config
        await wait_until(lambda: count(cdn) >= 2, 3)
        assert len(hooks.changed) == 1

        cdn.app.publish(ONBOARDING_KEY, BADGE_ON)
        await wait_until(lambda: len(hooks.changed) == 2, 3)
        assert hooks.changed[1][0].get_value("premiumBadge", None) is True

    assert len(hooks.ready) == 1
    assert not hooks.errors


async def test_on_ready_fires_once_when_the_initial_wait_runs_out(cdn, hooks):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    cdn.app.hang(ONBOARDING_KEY)
    polling = AutoPoll(interval=60, max_init_wait=0.3)
    client = Client(ONBOARDING_KEY, polling=polling, base_url=cdn.url, **hooks.kwargs())
    async with client:
        await client.get_value("premiumBadge", None)
        await client.get_value("premiumBadge", None)
        cdn.app.release()
        await wait_until(lambda: hooks.changed, 3)

    assert len(hooks.ready) == 1


async def test_on_ready_fires_for_manual_poll_right_away(cdn, hooks):
    async with Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, **hooks.kwargs()
    ):
        assert len(hooks.ready) == 1
    assert len(hooks.ready) == 1 and cdn.app.requests == []


async def test_on_flag_evaluated_follows_every_evaluation(cdn, hooks):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, **hooks.kwargs()
    )
    user = User("u1", custom={"plan": "premium"})
    async with client:
        # an evaluation without a config is an evaluation too
        await client.get_value("premiumBadge", "no-config")
        await client.refresh()
        assert await client.get_value("premiumBadge", False, user) is True
        await client.get_value_details("onboardingFeature", "x")
        await client.get_value("missingKey", "default")

    evaluated = [args[0] for args in hooks.evaluated]
    assert all(isinstance(details, EvaluationDetails) for details in evaluated)
    assert [(d.key, d.value) for d in evaluated] == [
        ("premiumBadge", "no-config"),
        ("premiumBadge", True),
        ("onboardingFeature", "default"),
        ("missingKey", "default"),
    ]
    assert evaluated[1].user == user
    assert evaluated[3].is_default_value


async def test_get_all_values_fires_on_flag_evaluated_per_setting(cdn, hooks):
    # configcat-client's get_all_values evaluates (and reports) each setting
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, **hooks.kwargs()
    )
    async with client:
        await client.refresh()
        values = await client.get_all_values()

    assert values == {"onboardingFeature": "default", "premiumBadge": False}
    assert sorted(args[0].key for args in hooks.evaluated) == sorted(values)


async def test_default_user_serves_evaluations_given_none(cdn, hooks):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    user = User("u1", custom={"plan": "premium"})
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, default_user=user,
        **hooks.kwargs(),
    )
    async with client:
        await client.refresh()
        assert await client.get_value("premiumBadge", False) is True
        assert (await client.get_all_values())["premiumBadge"] is True
        other = User("u2", custom={"plan": "free"})
        assert await client.get_value("premiumBadge", False, other) is False


def _raise(*args):
    raise RuntimeError("a hook that fails")


@pytest.mark.parametrize(
    "hook", ["on_ready", "on_config_changed", "on_flag_evaluated"]
)
async def test_a_hook_that_raises_is_reported_and_breaks_nothing(cdn, hook):
    cdn.app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)
    errors = []
    client = Client(
        ONBOARDING_KEY, polling=AutoPoll(interval=60, max_init_wait=5),
        base_url=cdn.url, on_error=lambda *args: errors.append(args), **{hook: _raise},
    )
    async with client:
        assert await client.get_value("premiumBadge", None) is False
        details = await client.get_value_details("onboardingFeature", "x")
        assert (await client.refresh()).is_success

    assert details.value == "default" and not details.is_default_value
    assert errors
    assert "a hook that fails" in " ".join(str(arg) for args in errors for arg in args)


async def test_on_error_that_raises_breaks_nothing(cdn):
    cdn.app.fail_with(ONBOARDING_KEY, 500)
    client = Client(
        ONBOARDING_KEY, polling=ManualPoll(), base_url=cdn.url, on_error=_raise
    )
    async with client:
        assert not (await client.refresh()).is_success
        assert await client.get_value("premiumBadge", "default") == "default"
