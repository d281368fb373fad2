"""
Every answer of amplitude.md's table, from the fake: what is dropped, held,
split, retried, and that every event ends with exactly one outcome.
"""

import anyio
import pytest

from amplitude_helpers import accounted, wait_until
from fake_amplitude import free_port
from flagstaff.amplitude import DropReason, Outcome

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def track_users(emitter, count, event_type="e", prefix="user-", start=0):
    for i in range(start, start + count):
        assert emitter.track(event_type, user_id=f"{prefix}{i:05}")


def assert_all_reported(amplitude, outcomes, stats):
    """Every event once: delivered ones stored once, the rest dropped."""
    assert accounted(stats) and stats.pending == 0
    assert set(outcomes.by_id().values()) == {1}
    amplitude.app.assert_exactly_once(outcomes.ids(Outcome.DELIVERED))


@pytest.mark.parametrize("first_only", [False, True], ids=["all-indexes", "first-index"])
async def test_a_partial_400_drops_only_the_named_events(
    amplitude, make_emitter, outcomes, first_only
):
    app = amplitude.app
    app.first_index_only = first_only
    app.reject_event_types = {"Blocked"}
    app.min_id_length = 8          # this project wants longer ids than 5
    app.silenced_devices = {"device-silenced"}
    async with make_emitter(flush_at=20) as emitter:
        for i in range(20):
            if i % 5 == 1:
                emitter.track("Blocked", user_id=f"user-{i:05}")
            elif i % 5 == 3:
                emitter.track("short", user_id=f"u-{i:04}")
            elif i == 10:
                emitter.track("silenced", device_id="device-silenced")
            else:
                emitter.track("fine", user_id=f"user-{i:05}")
        await emitter.flush()
        stats = emitter.stats

    assert_all_reported(amplitude, outcomes, stats)
    assert outcomes.reasons() == {None: 11, "rejected": 9}
    assert {e["event_type"] for e in app.ingested_events()} == {"fine"}
    assert stats.retried == 0
    requests = len(app.received_requests())
    assert requests == (10 if first_only else 3)


async def test_413_splits_drops_the_oversize_and_recovers(amplitude, make_emitter, outcomes):
    app = amplitude.app
    app.limits["/2/httpapi"].max_events = 10
    app.limits["/2/httpapi"].max_bytes = 6_000
    async with make_emitter(flush_at=40, max_batch_events=40) as emitter:
        track_users(emitter, 39)
        emitter.track("big", user_id="user-big00",
                      event_properties={str(i): "x" * 1000 for i in range(7)})
        await emitter.flush()
        assert len(app.ingested_events()) == 39
        app.reset()
        app.limits["/2/httpapi"].max_events = 2000
        for _ in range(40):
            track_users(emitter, emitter._count_limit)
            await emitter.flush()
            if emitter._count_limit == 40:
                break
        assert emitter._count_limit == 40
        stats = emitter.stats

    assert stats.split >= 2
    assert outcomes.ids(reason=DropReason.TOO_LARGE) and len(
        outcomes.ids(reason=DropReason.TOO_LARGE)
    ) == 1
    assert stats.delivered == stats.submitted - 1
    assert accounted(stats) and set(outcomes.by_id().values()) == {1}


async def test_429_holds_back_only_the_throttled_users(amplitude, make_emitter, outcomes):
    app = amplitude.app
    app.throttle(user_id="user-hot00")
    async with make_emitter(throttle_hold=0.4, flush_at=11) as emitter:
        emitter.track("hot", user_id="user-hot00")
        track_users(emitter, 10)
        started = anyio.current_time()
        await wait_until(lambda: len(app.ingested_events()) == 10, 2)
        others = anyio.current_time() - started
        emitter.track("hot again", user_id="user-hot00")  # held with the first
        emitter.track("cold", user_id="user-cold0")
        await wait_until(lambda: len(app.ingested_events()) == 11, 2)
        app.unthrottle()
        await emitter.flush()
        held = anyio.current_time() - started
        stats = emitter.stats

    assert others < 0.3 and held >= 0.4
    hot = app.arrivals("user-hot00")
    assert len(hot) == 2 and hot[1] - hot[0] >= 0.4
    assert stats.throttled >= 1 and stats.retried == 0
    assert_all_reported(amplitude, outcomes, stats)
    assert len(app.ingested_events()) == 13


async def test_429_drops_the_users_over_their_daily_quota(amplitude, make_emitter, outcomes):
    app = amplitude.app
    app.daily_quota = 3
    async with make_emitter(flush_at=8) as emitter:
        for _ in range(5):
            emitter.track("spam", user_id="user-spam0")
        track_users(emitter, 3)
        await emitter.flush()
        requests = len(app.received_requests())
        emitter.track("more spam", user_id="user-spam0")  # dropped here, unsent
        await emitter.flush()
        stats = emitter.stats

    assert len(app.received_requests()) == requests == 2
    assert outcomes.reasons() == {None: 3, "daily_quota": 6}
    assert_all_reported(amplitude, outcomes, stats)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 500, "ingest": True},
        {"kind": "body", "status": 502, "body": b"<html>bad gateway</html>",
         "content_type": b"text/html"},
        {"kind": "status", "status": 504, "ingest": True},
        {"kind": "status", "status": 503},
        {"kind": "status", "status": 408},
        {"kind": "reset"},
        {"kind": "reset", "ingest": True},
        {"kind": "hang", "seconds": 1.0, "ingest": True},
    ],
    ids=["500-ingested", "502-html", "504-ingested", "503", "408", "reset",
         "reset-ingested", "timeout-ingested"],
)
async def test_transient_failures_are_retried_without_duplicates(
    amplitude, make_emitter, outcomes, fault
):
    amplitude.app.fault(times=2, **fault)
    async with make_emitter(flush_at=10, timeout=0.3) as emitter:
        track_users(emitter, 25)
        with anyio.fail_after(10):
            await emitter.flush()
        stats = emitter.stats

    assert stats.delivered == 25 and stats.retried >= 10
    assert_all_reported(amplitude, outcomes, stats)
    if fault.get("ingest"):
        await wait_until(lambda: amplitude.app.duplicates_dropped() >= 10, 3)


@pytest.mark.parametrize(
    "body", [b"", b"<html>ok</html>", b"not json at all"], ids=["empty", "html", "text"]
)
async def test_a_2xx_is_delivered_whatever_its_body(amplitude, make_emitter, outcomes, body):
    amplitude.app.answer(200, body, times=1)
    async with make_emitter() as emitter:
        track_users(emitter, 3)
        await emitter.flush()
        stats = emitter.stats
    assert (stats.delivered, stats.requests, stats.retried) == (3, 1, 0)
    assert set(outcomes.by_id().values()) == {1}


async def test_an_invalid_api_key_stops_the_emitter_at_once(amplitude, make_emitter, outcomes):
    async with make_emitter(api_key="wrong-key-but-long-enough", flush_at=10) as emitter:
        track_users(emitter, 30)
        await emitter.flush()
        assert emitter.error and "wrong-key-but-long-enough" not in emitter.error
        assert not emitter.track("after", user_id="user-00001")
        stats = emitter.stats

    assert stats.error == emitter.error
    assert len(amplitude.app.received_requests()) <= 4  # the requests under way
    assert outcomes.reasons() == {"invalid_api_key": 31}
    assert accounted(stats) and set(outcomes.by_id().values()) == {1}


@pytest.mark.parametrize(
    "setup, reason",
    [
        (lambda app: app.fail(403), DropReason.FORBIDDEN),
        (lambda app: app.answer(401, b""), DropReason.HTTP_ERROR),
        (lambda app: app.answer(404, b"<html>no</html>"), DropReason.HTTP_ERROR),
        (lambda app: app.fail(400), DropReason.BAD_REQUEST),
        (lambda app: app.answer(400, b'{"code":400,"error":"Invalid JSON request body"}'),
         DropReason.BAD_REQUEST),
        (lambda app: app.answer(
            400, b'{"code":400,"error":"Request missing required field",'
                 b'"missing_field":"events"}'), DropReason.BAD_REQUEST),
    ],
    ids=["403", "401", "404", "400-no-detail", "400-bad-json", "400-missing-field"],
)
async def test_hopeless_answers_are_dropped_not_retried(
    amplitude, make_emitter, outcomes, setup, reason
):
    setup(amplitude.app)
    async with make_emitter() as emitter:
        track_users(emitter, 5)
        await emitter.flush()
        stats = emitter.stats
    assert stats.requests == 1 and stats.retried == 0
    assert outcomes.reasons() == {reason.value: 5}
    assert accounted(stats)


async def test_a_wrong_path_is_a_bad_request(amplitude, make_emitter, outcomes):
    async with make_emitter(server_url=amplitude.url + "/wrong/path") as emitter:
        track_users(emitter, 2)
        await emitter.flush()
    assert outcomes.reasons() == {"bad_request": 2}


async def test_retries_back_off_with_jitter_and_give_up(amplitude, make_emitter, outcomes):
    amplitude.app.fail(500)
    async with make_emitter(max_retries=4, backoff=0.04, max_backoff=1.0) as emitter:
        track_users(emitter, 3)
        with anyio.fail_after(5):
            await emitter.flush()
        stats = emitter.stats
    times = [request.time for request in amplitude.app.received_requests()]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert len(times) == 5
    assert all(0.02 <= gap <= 0.04 * 2**i + 0.05 for i, gap in enumerate(gaps))
    assert gaps[-1] > gaps[0]
    assert outcomes.reasons() == {"exhausted": 3}
    assert stats.retried == 12 and accounted(stats)


async def test_retries_stop_at_the_max_age(amplitude, make_emitter, outcomes):
    async with make_emitter(server_url=f"http://127.0.0.1:{free_port()}",
                            max_retries=1000, max_age=0.3) as emitter:
        track_users(emitter, 2)
        took = 0.0
        with anyio.fail_after(5):
            start = anyio.current_time()
            await emitter.flush()
            took = anyio.current_time() - start
    assert 0.3 <= took < 1.5
    assert outcomes.reasons() == {"exhausted": 2}
