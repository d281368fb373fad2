"""
What the emitter sends: the event shapes, dedup, batching, endpoints, and the
events it refuses before sending.
"""

import datetime
import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest

import flagstaff
from amplitude_helpers import accounted, wait_until
from fake_amplitude import API_KEY
from flagstaff.amplitude import AmplitudeEmitter, DropReason, Outcome

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

EXAMPLE = Path(flagstaff.__file__).parent / "examples" / "onboarding.json"
CONFIG = flagstaff.Config.from_json(EXAMPLE.read_text())


def evaluation(user_id="user-42", plan="free", key="onboardingFeature"):
    return CONFIG.get_value_details(
        key, "default", flagstaff.User(user_id, custom={"plan": plan})
    )


def details(value="on", *, key="flag", user="user-00042", variation_id="v-1", **more):
    fields = {"is_default_value": False, "error": None, **more}
    person = SimpleNamespace(identifier=user, custom={"device": "device-00042"})
    return SimpleNamespace(key=key, value=value, variation_id=variation_id,
                           user=person if user else None, **fields)


async def test_the_onboarding_experiment_arrives_once_each(amplitude, make_emitter, outcomes):
    user = flagstaff.User("user-42", custom={"plan": "free"})
    seen = evaluation()
    async with make_emitter() as emitter:
        assert emitter.identify("user-42", {"plan": "free"})
        for _ in range(1000):
            emitter.exposure(seen)
        assert emitter.track("Subscribed to Premium", user=user,
                             event_properties={"purchasedTier": 2}, revenue=9.99)
        assert emitter.assignment([seen, evaluation(key="premiumBadge")])
        await emitter.flush()
        stats = emitter.stats

    assert stats.exposures_deduplicated == 999
    assert (stats.delivered, stats.pending) == (4, 0) and accounted(stats)
    amplitude.app.assert_exactly_once(outcomes.ids(Outcome.DELIVERED))
    stored = {event["event_type"]: event for event in amplitude.app.ingested_events()}
    for event in stored.values():
        assert event["user_id"] == "user-42"
        assert type(event["time"]) is int and event["insert_id"]
        assert event["library"] == f"flagstaff/{flagstaff.__version__}"
    assert stored["$identify"]["user_properties"] == {"$set": {"plan": "free"}}
    assert stored["$exposure"]["event_properties"] == {
        "flag_key": "onboardingFeature", "variant": seen.value,
        "variation_id": seen.variation_id,
    }
    assert stored["Subscribed to Premium"]["event_properties"] == {"purchasedTier": 2}
    assert stored["Subscribed to Premium"]["revenue"] == 9.99
    assignment = stored["[Experiment] Assignment"]
    assert assignment["event_properties"]["onboardingFeature.variant"] == seen.value
    assert assignment["user_properties"]["$set"]["[Experiment] onboardingFeature"] == seen.value


async def test_experiment_shape_and_what_is_skipped(amplitude, make_emitter):
    async with make_emitter(exposure_event="[Experiment] Exposure",
                            device_id_attribute="device") as emitter:
        assert emitter.exposure(details(True), experiment_key="exp-1")
        assert not emitter.exposure(details(is_default_value=True, key="b"))
        assert not emitter.exposure(details(error="no such flag", key="c"))
        assert not emitter.exposure(details(user=None, key="d"))
        assert not emitter.exposure(object())
        assert emitter.exposure(details("{" + "x" * 300 + "}", key="long", variation_id="v-9"))
        await emitter.flush()
        assert emitter.stats.exposures_skipped == 4

    events = {e["event_properties"]["[Experiment] Flag Key"]: e
              for e in amplitude.app.ingested_events()}
    assert events.keys() == {"flag", "long"}
    flag = events["flag"]
    assert flag["event_type"] == "[Experiment] Exposure"
    assert flag["device_id"] == "device-00042"
    assert flag["event_properties"]["[Experiment] Variant"] == "true"
    assert flag["event_properties"]["[Experiment] Experiment Key"] == "exp-1"
    assert flag["user_properties"] == {"$set": {"[Experiment] flag": "true"}}
    assert events["long"]["event_properties"]["[Experiment] Variant"] == "v-9"


async def test_defaults_are_sent_when_asked(amplitude, make_emitter):
    async with make_emitter(skip_defaults=False) as emitter:
        assert emitter.exposure(details("off", is_default_value=True))
        await emitter.flush()
    [event] = amplitude.app.ingested_events()
    assert event["event_properties"]["variant"] == "off"


async def test_one_exposure_per_day_per_flag_and_variant(amplitude, make_emitter, outcomes):
    emitter = make_emitter(dedup_capacity=2)
    now = [1_700_000_000.0]
    emitter._clock = lambda: now[0]
    async with emitter:
        first = [emitter.exposure(details("a")) for _ in range(100)]
        assert first.count(True) == 1
        assert emitter.exposure(details("b"))          # another variant
        assert not emitter.exposure(details("a"))      # still the same day
        now[0] += 86_400
        assert emitter.exposure(details("a"))          # the next day
        # More users than the cache holds: the oldest is forgotten and sent
        # again, with the same insert id, so Amplitude keeps one.
        assert emitter.exposure(details("a", user="user-00007"))
        assert emitter.exposure(details("a", user="user-00008"))
        assert emitter.exposure(details("a"))
        await emitter.flush()

    stored = amplitude.app.ingested_events()
    assert len(stored) == 5 and amplitude.app.duplicates_dropped() == 1
    days = [e["insert_id"] for e in stored if e["user_id"] == "user-00042"
            and e["event_properties"]["variant"] == "a"]
    assert len(days) == 2 and days[0] != days[1]
    assert len(outcomes.ids(Outcome.DELIVERED)) == 6


async def test_insert_ids_agree_across_processes(amplitude, make_emitter):
    for _ in range(2):
        async with make_emitter() as emitter:
            emitter.exposure(evaluation("user-77"))
            emitter.assignment([evaluation("user-77")])
    assert len(amplitude.app.ingested_events()) == 2
    assert amplitude.app.duplicates_dropped() == 2


async def test_identifies_repeat_only_on_change(amplitude, make_emitter):
    async with make_emitter() as emitter:
        assert emitter.identify("user-42", {"plan": "free"})
        assert not emitter.identify("user-42", {"plan": "free"})
        assert emitter.identify("user-42", {"plan": "premium"})
        assert emitter.identify("user-42", {"plan": "free"})
        assert emitter.identify("user-42", {"a": 1}, set_once={"b": 2}, add={"n": 1},
                                append={"l": "x"}, unset=["c"])
        assert not emitter.identify("user-42", {"a": 1}, set_once={"a": 2})
        assert not emitter.identify("user-42")
        await emitter.flush()
        assert emitter.stats.identifies_deduplicated == 1
    last = amplitude.app.ingested_events()[-1]["user_properties"]
    assert last == {"$set": {"a": 1}, "$setOnce": {"b": 2}, "$add": {"n": 1},
                    "$append": {"l": "x"}, "$unset": {"c": "-"}}


async def test_batches_are_bounded_by_count_and_bytes(amplitude, make_emitter):
    async with make_emitter(flush_at=10, max_batch_events=10) as emitter:
        for i in range(35):
            emitter.track("counted", user_id=f"user-{i:05}")
        await emitter.flush()
    assert amplitude.app.max_request_events() == 10
    assert len(amplitude.app.ingested_events()) == 35
    amplitude.app.reset()
    async with make_emitter(max_batch_bytes=2_000) as emitter:
        for i in range(40):
            emitter.track("sized", user_id=f"user-{i:05}", event_properties={"p": "x" * 200})
        await emitter.flush()
    assert amplitude.app.max_request_bytes() <= 2_000
    assert len(amplitude.app.received_requests()) > 4
    assert len(amplitude.app.ingested_events()) == 40


async def test_a_batch_goes_at_its_size_or_its_interval(amplitude, make_emitter):
    async with make_emitter(flush_at=20, flush_interval=60) as emitter:
        for i in range(20):
            emitter.track("by count", user_id="user-00001")
        await wait_until(lambda: len(amplitude.app.ingested_events()) == 20, 2)
    amplitude.app.reset()
    async with make_emitter(flush_at=1000, flush_interval=0.2) as emitter:
        emitter.track("by time", user_id="user-00001")
        took = await wait_until(lambda: amplitude.app.ingested_events(), 3)
    assert 0.1 < took < 1.5


async def test_refused_events_are_reported_not_raised(amplitude, make_emitter, outcomes):
    when = datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)
    async with make_emitter(max_batch_bytes=4_000) as emitter:
        refused = [
            emitter.track("no ids"),
            emitter.track("null id", user_id="null"),
            emitter.track("short id", user_id="abc"),
            emitter.track("", user_id="user-00001"),
            emitter.track("bad value", user_id="user-00001", event_properties={"o": object()}),
            emitter.track("bad props", user_id="user-00001", event_properties=[1]),
            emitter.track("bad field", user_id="user-00001", colour="red"),
            emitter.track("bad time", user_id="user-00001", time="yesterday"),
            emitter.track("huge", user_id="user-00001",
                          event_properties={str(i): "x" * 1000 for i in range(5)}),
        ]
        accepted = [
            emitter.track("long text", user_id="user-00001", event_properties={"t": "y" * 5000}),
            emitter.track("a date", user_id=12345678, event_properties={"at": when}, time=when),
        ]
        await emitter.flush()
        stats = emitter.stats

    assert refused == [False] * 9 and accepted == [True, True]
    assert outcomes.reasons() == {
        "invalid_id": 3, "invalid_event": 5, "too_large": 1, None: 2,
    }
    assert accounted(stats) and stats.dropped == 9
    stored = {e["event_type"]: e for e in amplitude.app.ingested_events()}
    assert len(stored["long text"]["event_properties"]["t"]) == 1024
    assert stored["a date"]["event_properties"]["at"] == "2024-05-01T00:00:00Z"
    assert stored["a date"]["time"] == int(when.timestamp() * 1000)
    assert stored["a date"]["user_id"] == "12345678"
    assert amplitude.app.truncated == []  # cut here, not by Amplitude


def test_endpoints():
    assert AmplitudeEmitter(API_KEY).url == "https://api2.amplitude.com/2/httpapi"
    assert AmplitudeEmitter(API_KEY, server_zone="EU").url == (
        "https://api.eu.amplitude.com/2/httpapi"
    )
    assert AmplitudeEmitter(API_KEY, server_zone="eu", use_batch=True).url == (
        "https://api.eu.amplitude.com/batch"
    )
    assert AmplitudeEmitter(API_KEY, server_url="http://127.0.0.1:1/").url == (
        "http://127.0.0.1:1/2/httpapi"
    )
    assert AmplitudeEmitter(API_KEY, server_url="http://127.0.0.1:1/x/y").url == (
        "http://127.0.0.1:1/x/y"
    )
    assert API_KEY not in repr(AmplitudeEmitter(API_KEY))
    for bad in ({"server_zone": "MARS"}, {"server_url": "ftp://x"}, {"flush_at": 0},
                {"max_batch_events": 5000}, {"overflow": "block"},
                {"exposure_event": "seen"}):
        with pytest.raises(ValueError):
            AmplitudeEmitter(API_KEY, **bad)
    with pytest.raises(ValueError):
        AmplitudeEmitter("")


async def test_batch_api_gzip_and_min_id_length(amplitude, make_emitter):
    async with make_emitter(use_batch=True, gzip=True, min_id_length=3) as emitter:
        assert emitter.track("short ids allowed", user_id="abc")
        await emitter.flush()
    [request] = amplitude.app.received_requests()
    assert request.path == "/batch"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"
    assert request.json()["options"] == {"min_id_length": 3}
    assert request.json()["api_key"] == API_KEY
    assert [e["user_id"] for e in amplitude.app.ingested_events()] == ["abc"]
    assert gzip and json  # the fake did the decompressing


async def test_enqueueing_never_waits_for_a_slow_server(amplitude, make_emitter):
    amplitude.app.slow(0.5)
    lags = []
    in_flight = []

    async def tick():
        for _ in range(40):
            start = anyio.current_time()
            await anyio.sleep(0.005)
            lags.append(anyio.current_time() - start - 0.005)
            in_flight.append(emitter._inflight_requests)

    async with make_emitter(flush_at=50, max_in_flight=2) as emitter:
        async with anyio.create_task_group() as group:
            group.start_soon(tick)
            for i in range(2000):
                assert emitter.track("fast", user_id=f"user-{i % 50:05}")
                if i % 100 == 0:
                    await anyio.sleep(0)
        await emitter.flush()
    assert max(lags) < 0.05 and max(in_flight) == 2
    assert len(amplitude.app.ingested_events()) == 2000
