"""The OpenFeature provider, exercised through openfeature-sdk's client."""

import json
import sys
import time
from pathlib import Path

import anyio
import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.track import TrackingEventDetails

import flagstaff

# The fake CDN lives with the client's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from cdn import FakeCDN, serve  # noqa: E402

SDK_KEY = "configcat-sdk-1/PKDVCLf-Hq-h-kCzMp-L7Q/HhOWfwVVZ0mxTiUgkUHhtw"
ONBOARDING = (
    Path(flagstaff.__file__).parent / "examples" / "onboarding.json"
).read_text()

SMALL = {
    "p": {"u": "https://cdn-global.configcat.com", "r": 0, "s": "c2FsdA=="},
    "f": {
        "enabled": {"t": 0, "v": {"b": True}, "i": "v-enabled"},
        "retries": {"t": 2, "v": {"i": 3}, "i": "v-retries"},
        "ratio": {"t": 3, "v": {"d": 0.25}, "i": "v-ratio"},
        "layout": {"t": 1, "v": {"s": '{"columns": 2, "dark": true}'}, "i": "v-lay"},
        "broken": {"t": 1, "v": {"s": "{not json"}, "i": "v-broken"},
        "greeting": {
            "t": 1,
            "r": [
                {
                    "c": [{"u": {"a": "Email", "c": 2, "l": ["@example.com"]}}],
                    "s": {"v": {"s": "hello colleague"}, "i": "v-colleague"},
                },
                {
                    "c": [{"u": {"a": "Country", "c": 0, "l": ["Hungary"]}}],
                    "s": {"v": {"s": "szia"}, "i": "v-hu"},
                },
            ],
            "v": {"s": "hello"},
            "i": "v-hello",
        },
    },
}


class FakeEmitter:
    """Records what the provider hands to an AmplitudeEmitter."""

    def __init__(self):
        self.tracked = []
        self.exposures = []

    def track(self, event_type, **fields):
        self.tracked.append((event_type, fields))
        return True

    def exposure(self, details, **fields):
        self.exposures.append(details)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_registry():
    yield
    api.clear_providers()


def cache_with(config_json, etag="etag", age=0.0):
    cache = flagstaff.MemoryCache()
    fetched = int((time.time() - age) * 1000)
    entry = f'{fetched}\n"{etag}"\n{config_json}'
    cache._values[flagstaff.client.cache_key(SDK_KEY)] = entry
    return cache


def provider_for(config_json, **kwargs):
    from flagstaff.openfeature import FlagstaffProvider

    kwargs.setdefault("polling", flagstaff.ManualPoll())
    kwargs.setdefault("cache", cache_with(config_json))
    return FlagstaffProvider(SDK_KEY, offline=True, **kwargs)


@pytest.mark.anyio
async def test_onboarding_split_and_targeting_async():
    async with provider_for(ONBOARDING) as provider:
        api.set_provider_and_wait(provider)
        client = api.get_client()

        free = EvaluationContext("user-42", {"plan": "free"})
        details = await client.get_string_details_async("onboardingFeature", "x", free)
        assert details.value in {"default", "feature1", "feature2", "feature3"}
        assert details.reason == Reason.SPLIT
        assert details.variant in {"c0a1b2c3", "f1a1b2c3", "f2a1b2c3", "f3a1b2c3"}
        assert details.error_code is None
        user = flagstaff.User("user-42", custom={"plan": "free"})
        expected = await provider.client.get_value_details(
            "onboardingFeature", "x", user
        )
        assert (details.value, details.variant) == (
            expected.value,
            expected.variation_id,
        )

        premium = EvaluationContext("user-7", {"plan": "premium"})
        details = await client.get_string_details_async(
            "onboardingFeature", "x", premium
        )
        assert (details.value, details.reason) == ("default", Reason.DEFAULT)
        assert details.variant == "d0a1b2c3"

        badge = await client.get_boolean_details_async("premiumBadge", False, premium)
        assert badge.value is True
        assert badge.reason == Reason.TARGETING_MATCH
        assert badge.variant == "b1a1b2c3"


@pytest.mark.anyio
async def test_every_flag_type_sync_and_async():
    async with provider_for(json.dumps(SMALL)) as provider:
        api.set_provider_and_wait(provider)
        client = api.get_client()
        cases = [
            (client.get_boolean_details, "enabled", False, True, "v-enabled"),
            (client.get_integer_details, "retries", 0, 3, "v-retries"),
            (client.get_float_details, "ratio", 0.0, 0.25, "v-ratio"),
            (client.get_float_details, "retries", 0.0, 3.0, "v-retries"),
            (client.get_string_details, "greeting", "", "hello", "v-hello"),
            (
                client.get_object_details,
                "layout",
                {},
                {"columns": 2, "dark": True},
                "v-lay",
            ),
        ]
        for get, key, default, value, variant in cases:
            for details in (
                get(key, default),
                await getattr(client, get.__name__ + "_async")(key, default),
            ):
                assert details.error_code is None, details
                assert details.value == value
                assert type(details.value) is type(value)
                assert details.variant == variant
        static = client.get_boolean_details("enabled", False)
        assert static.reason == Reason.STATIC
        assert client.get_string_details("greeting", "").reason == Reason.DEFAULT


@pytest.mark.anyio
async def test_context_maps_onto_the_user():
    from flagstaff.openfeature import to_user

    context = EvaluationContext(
        "u1", {"Email": "ann@example.com", "Country": "Hungary", "plan": "free"}
    )
    user = to_user(context)
    assert user.identifier == "u1"
    assert (user.email, user.country) == ("ann@example.com", "Hungary")
    assert user.custom == {"plan": "free"}
    assert to_user(None) is None and to_user(EvaluationContext()) is None

    async with provider_for(json.dumps(SMALL)) as provider:
        api.set_provider_and_wait(provider)
        client = api.get_client()
        colleague = client.get_string_details("greeting", "", context)
        assert (colleague.value, colleague.reason) == (
            "hello colleague",
            Reason.TARGETING_MATCH,
        )
        hungarian = EvaluationContext("u2", {"Country": "Hungary"})
        details = await client.get_string_details_async("greeting", "", hungarian)
        assert (details.value, details.variant) == ("szia", "v-hu")


@pytest.mark.anyio
async def test_errors_are_mapped():
    async with provider_for(json.dumps(SMALL)) as provider:
        api.set_provider_and_wait(provider)
        client = api.get_client()

        missing = client.get_boolean_details("nope", True)
        assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
        assert missing.reason == Reason.ERROR

        for details in (
            client.get_boolean_details("retries", False),
            client.get_integer_details("ratio", 1),
            client.get_integer_details("enabled", 1),
            client.get_object_details("retries", {"a": 1}),
            await client.get_string_details_async("enabled", "dflt"),
        ):
            assert details.error_code == ErrorCode.TYPE_MISMATCH, details
            assert details.reason == Reason.ERROR
            assert details.error_message

        broken = client.get_object_details("broken", {"fallback": True})
        assert broken.value == {"fallback": True}
        assert broken.error_code == ErrorCode.PARSE_ERROR


@pytest.mark.anyio
async def test_no_config_is_provider_not_ready():
    cache = flagstaff.MemoryCache()
    async with provider_for("", cache=cache) as provider:
        api.set_provider_and_wait(provider)
        client = api.get_client()
        for details in (
            client.get_string_details("greeting", "fallback"),
            await client.get_string_details_async("greeting", "fallback"),
        ):
            assert details.value == "fallback"
            assert details.error_code == ErrorCode.PROVIDER_NOT_READY


@pytest.mark.anyio
async def test_events_ready_changed_and_error():
    events = []

    def record(details):
        if details.provider_name == "flagstaff":
            events.append(details)

    seen_by_user = []
    cache = cache_with(json.dumps(SMALL), etag="one", age=5)
    provider = provider_for(
        None,
        cache=cache,
        polling=flagstaff.AutoPoll(interval=1),
        on_config_changed=seen_by_user.append,
    )
    client = api.get_client()
    for event in ProviderEvent:
        client.add_handler(event, record)

    # Registered before it was opened: not ready until it is.
    api.set_provider(provider)
    with anyio.fail_after(5):
        while not events:
            await anyio.sleep(0.01)
    assert events[0].error_code == ErrorCode.PROVIDER_NOT_READY
    events.clear()

    async with provider:
        with anyio.fail_after(5):
            while not events:
                await anyio.sleep(0.01)
        assert events[0].message == "flagstaff is ready"
        assert client.get_provider_status().value == "READY"

        changed = json.loads(json.dumps(SMALL))
        changed["f"]["retries"]["v"]["i"] = 5
        del changed["f"]["broken"]
        fresh = cache_with(json.dumps(changed), etag="two", age=5)
        await provider.client._cache.set(
            flagstaff.client.cache_key(SDK_KEY),
            await fresh.get(flagstaff.client.cache_key(SDK_KEY)),
        )
        with anyio.fail_after(5):
            while not any(e.flags_changed for e in events):
                await anyio.sleep(0.02)
        change = next(e for e in events if e.flags_changed)
        assert change.flags_changed == ["broken", "retries"]
        assert client.get_integer_value("retries", 0) == 5
        assert len(seen_by_user) == 2

    events.clear()
    failing = provider_for(json.dumps(SMALL), on_flag_evaluated=lambda details: 1 / 0)
    async with failing:
        api.set_provider_and_wait(failing)
        await client.get_boolean_value_async("enabled", False)
        # OpenFeature runs handlers in a thread pool: wait for this one.
        with anyio.fail_after(5):
            while not any(e.error_code == ErrorCode.GENERAL for e in events):
                await anyio.sleep(0.01)
        error = next(e for e in events if e.error_code == ErrorCode.GENERAL)
        assert "ZeroDivisionError" in error.message
        assert client.get_provider_status().value == "ERROR"


@pytest.mark.anyio
async def test_tracking_goes_to_the_emitter():
    emitter = FakeEmitter()
    async with provider_for(ONBOARDING, emitter=emitter) as provider:
        api.set_provider_and_wait(provider)
        client = api.get_client()
        context = EvaluationContext("user-42", {"plan": "free"})
        client.track(
            "Subscribed to Premium",
            context,
            TrackingEventDetails(value=9.99, attributes={"plan": "yearly"}),
        )
        client.track("Opened pricing", context)
    assert emitter.tracked == [
        (
            "Subscribed to Premium",
            {
                "user_id": "user-42",
                "event_properties": {"plan": "yearly", "value": 9.99},
            },
        ),
        ("Opened pricing", {"user_id": "user-42", "event_properties": {}}),
    ]


@pytest.mark.anyio
async def test_sync_evaluations_reach_the_clients_emitter():
    emitter = FakeEmitter()
    async with provider_for(ONBOARDING, emitter=emitter) as provider:
        api.set_provider_and_wait(provider)
        client = api.get_client()
        context = EvaluationContext("user-42", {"plan": "free"})
        client.get_string_value("onboardingFeature", "x", context)
        await client.get_string_value_async("onboardingFeature", "x", context)
    assert [d.key for d in emitter.exposures] == ["onboardingFeature"] * 2
    assert emitter.tracked == []


@pytest.mark.anyio
async def test_a_client_given_is_used_as_is():
    from flagstaff.openfeature import FlagstaffProvider

    with pytest.raises(TypeError):
        FlagstaffProvider()
    async with flagstaff.Client(
        SDK_KEY,
        polling=flagstaff.ManualPoll(),
        offline=True,
        cache=cache_with(ONBOARDING),
    ) as flag_client:
        provider = FlagstaffProvider(client=flag_client)
        with pytest.raises(TypeError):
            FlagstaffProvider(client=flag_client, offline=True)
        api.set_provider_and_wait(provider)
        assert api.get_provider_metadata().name == "flagstaff"
        value = await api.get_client().get_boolean_value_async(
            "premiumBadge", False, EvaluationContext("u", {"plan": "premium"})
        )
        assert value is True


@pytest.mark.anyio
async def test_the_provider_is_ready_again_once_a_download_succeeds():
    events = []

    def record(details):
        if details.provider_name == "flagstaff":
            events.append(details)

    client = api.get_client()
    for event in ProviderEvent:
        client.add_handler(event, record)
    with serve(FakeCDN()) as cdn:
        cdn.app.publish(SDK_KEY, json.dumps(SMALL))
        from flagstaff.openfeature import FlagstaffProvider

        provider = FlagstaffProvider(SDK_KEY, base_url=cdn.url,
                                     polling=flagstaff.AutoPoll(interval=1))
        async with provider:
            await provider.client.get_value("enabled", False)   # the first config
            api.set_provider_and_wait(provider)
            assert client.get_provider_status().value == "READY"

            cdn.app.fail_with(SDK_KEY, 503)
            with anyio.fail_after(5):
                while client.get_provider_status().value != "ERROR":
                    await anyio.sleep(0.02)
            # Still erring: evaluations serve the config held, the status stays.
            assert client.get_boolean_value("enabled", False) is True
            assert client.get_provider_status().value == "ERROR"

            # The same config comes back (a 304): the next evaluation after
            # that download finds the provider recovered.
            cdn.app.fix(SDK_KEY)
            errors = len(cdn.app.requests_for(SDK_KEY))
            with anyio.fail_after(5):
                while len(cdn.app.requests_for(SDK_KEY)) == errors:
                    await anyio.sleep(0.02)
            await anyio.sleep(0.1)
            assert client.get_boolean_value("enabled", False) is True
            with anyio.fail_after(5):
                while client.get_provider_status().value != "READY":
                    await anyio.sleep(0.02)
    assert any(e.message == "recovered" for e in events)
