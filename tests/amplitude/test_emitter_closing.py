"""
The emitter's life: flush, aclose within its deadline, the spool file that
carries events to the next emitter, and the bounded queue.
"""

import time

import anyio
import pytest

from amplitude_helpers import accounted, wait_until
from fake_amplitude import free_port
from flagstaff.amplitude import AmplitudeEmitter, DropReason, Outcome

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def track_users(emitter, count, start=0):
    return [emitter.track("e", user_id=f"user-{i:05}") for i in range(start, start + count)]


def down() -> str:
    """A URL where nothing listens: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}"


async def test_flush_waits_for_retries_and_is_cancel_safe(amplitude, make_emitter):
    amplitude.app.fail(503, times=3)
    async with make_emitter() as emitter:
        track_users(emitter, 5)
        with anyio.move_on_after(0.01):
            await emitter.flush()      # cancelled: the events stay queued
        await emitter.flush()
        assert emitter.stats.delivered == 5
        await emitter.flush()          # nothing pending: at once
    assert len(amplitude.app.ingested_events()) == 5


async def test_aclose_drains_retries_when_amplitude_recovers_in_time(
    amplitude, make_emitter, outcomes
):
    amplitude.app.fail(503, times=3)
    async with make_emitter(backoff=0.1, max_backoff=0.2) as emitter:
        track_users(emitter, 20)
        await wait_until(lambda: emitter.stats.retried)
        stats = await emitter.aclose(deadline=5)
    assert stats.delivered == 20 and stats.pending == 0
    amplitude.app.assert_exactly_once(outcomes.ids(Outcome.DELIVERED))


@pytest.mark.parametrize("where", ["refused", "hanging"])
async def test_aclose_returns_within_its_deadline(amplitude, make_emitter, outcomes, where):
    url = down() if where == "refused" else amplitude.url
    if where == "hanging":
        amplitude.app.hang()
    emitter = make_emitter(server_url=url, timeout=10, max_retries=100)
    async with emitter:
        track_users(emitter, 50)
        await anyio.sleep(0.1)
        start = time.monotonic()
        stats = await emitter.aclose(deadline=0.6)
        took = time.monotonic() - start
        assert await emitter.aclose() == stats       # twice is fine
    assert took < 1.0
    assert stats.dropped == 50 and stats.pending == 0 and accounted(stats)
    assert outcomes.reasons() == {"shutdown": 50}


async def test_the_spool_carries_events_to_the_next_emitter(
    amplitude, make_emitter, outcomes, tmp_path
):
    spool = tmp_path / "amplitude.spool"
    async with make_emitter(server_url=down(), spool=spool, close_deadline=0.3) as first:
        sent = track_users(first, 40)
    assert all(sent) and first.stats.spooled == 40
    assert len(spool.read_bytes().splitlines()) == 40
    spooled = set(outcomes.ids(Outcome.SPOOLED))

    outcomes.calls.clear()
    async with make_emitter(spool=spool) as second:
        assert second.stats.loaded_from_spool == 40
        await second.flush()
        stats = second.stats
    assert not spool.exists() or spool.read_bytes() == b""
    assert set(outcomes.ids(Outcome.DELIVERED)) == spooled
    amplitude.app.assert_exactly_once(spooled)
    assert accounted(stats)


async def test_events_in_flight_at_the_deadline_are_spooled_and_not_doubled(
    amplitude, make_emitter, outcomes, tmp_path
):
    spool = tmp_path / "amplitude.spool"
    amplitude.app.hang(0.5, ingest=True, times=1)
    async with make_emitter(spool=spool, timeout=5) as first:
        track_users(first, 10)
        await wait_until(lambda: amplitude.app.received_events == 0 and first.stats.in_flight)
        await first.aclose(deadline=0.2)
    assert first.stats.spooled == 10
    await wait_until(lambda: len(amplitude.app.ingested_events()) == 10)  # it was taken

    async with make_emitter(spool=spool) as second:
        await second.flush()
    assert amplitude.app.duplicates_dropped() == 10
    amplitude.app.assert_exactly_once(outcomes.ids(Outcome.SPOOLED))


async def test_what_retries_could_not_deliver_is_spooled_then_sent(
    amplitude, make_emitter, outcomes, tmp_path
):
    spool = tmp_path / "amplitude.spool"
    amplitude.app.fail(503)
    async with make_emitter(spool=spool, max_retries=1) as emitter:
        track_users(emitter, 10)
        await emitter.flush()
        assert emitter.stats.spooled == 10 and spool.exists()
        amplitude.app.clear_faults()
        track_users(emitter, 1, start=10)
        await emitter.flush()                        # Amplitude answers again...
        await wait_until(lambda: emitter.stats.loaded_from_spool == 10)
        await emitter.flush()                        # ...so the spool goes out
        stats = emitter.stats
    assert stats.delivered == 21 - 10 and stats.spooled == 10
    assert len(amplitude.app.ingested_events()) == 11
    assert accounted(stats)


@pytest.mark.parametrize("policy", ["drop_new", "drop_oldest"])
async def test_a_full_queue_follows_its_policy(outcomes, policy):
    emitter = AmplitudeEmitter("k" * 32, max_queue=10, overflow=policy,
                               on_outcome=outcomes.callback)
    results = track_users(emitter, 15)
    stats = emitter.stats
    assert stats.overflowed == 5 and stats.queued == 10 and accounted(stats)
    dropped = [e["user_id"] for e, _, r in outcomes.calls if r is DropReason.OVERFLOW]
    if policy == "drop_new":
        assert results == [True] * 10 + [False] * 5
        assert dropped == [f"user-{i:05}" for i in range(10, 15)]
    else:
        assert results == [True] * 15
        assert dropped == [f"user-{i:05}" for i in range(5)]
    await emitter.aclose(deadline=0.1)
    assert outcomes.reasons()["shutdown"] == 10


async def test_the_queue_is_bounded_in_bytes_too(outcomes):
    emitter = AmplitudeEmitter("k" * 32, max_queue_bytes=2_000, on_outcome=outcomes.callback)
    results = [emitter.track("e", user_id="user-00001", event_properties={"p": "x" * 300})
               for _ in range(10)]
    kept = results.count(True)
    assert results == [True] * kept + [False] * (10 - kept) and kept >= 4
    assert emitter.stats.queued_bytes <= 2_000
    await emitter.aclose(deadline=0.1)


async def test_overflow_goes_to_the_spool_when_there_is_one(outcomes, tmp_path):
    spool = tmp_path / "amplitude.spool"
    emitter = AmplitudeEmitter("k" * 32, max_queue=5, spool=spool,
                               on_outcome=outcomes.callback)
    track_users(emitter, 8)
    await emitter.aclose(deadline=0.1)
    assert emitter.stats.spooled == 8
    assert len(spool.read_bytes().splitlines()) == 8


async def test_the_spool_is_bounded(outcomes, tmp_path):
    spool = tmp_path / "amplitude.spool"
    emitter = AmplitudeEmitter("k" * 32, spool=spool, spool_max_bytes=1_000,
                               on_outcome=outcomes.callback)
    track_users(emitter, 20)
    stats = await emitter.aclose(deadline=0.1)
    assert spool.stat().st_size <= 1_000
    assert stats.spooled + stats.dropped_by_reason["spool_full"] == 20


async def test_bad_and_old_spool_lines_are_reported(amplitude, make_emitter, outcomes, tmp_path):
    spool = tmp_path / "amplitude.spool"
    now = int(time.time() * 1000)
    spool.write_bytes(
        b'{"event_type":"ok","user_id":"user-00001","insert_id":"a","time":%d}\n'
        b'{"event_type":"old","user_id":"user-00001","insert_id":"b","time":1}\n'
        b'{"broken\n' % now
    )
    async with make_emitter(spool=spool) as emitter:
        await emitter.flush()
        stats = emitter.stats
    assert outcomes.reasons() == {None: 1, "expired": 1, "spool_error": 1}
    assert accounted(stats) and stats.submitted == 3


async def test_an_invalid_api_key_spools_rather_than_drops(
    amplitude, make_emitter, outcomes, tmp_path
):
    spool = tmp_path / "amplitude.spool"
    async with make_emitter(api_key="a-key-that-was-revoked", spool=spool) as emitter:
        track_users(emitter, 5)
        await emitter.flush()
        assert emitter.error
        track_users(emitter, 1, start=5)
    assert outcomes.reasons() == {None: 6}
    assert len(outcomes.ids(Outcome.SPOOLED)) == 6
    async with make_emitter(spool=spool) as fixed:       # the right key, next time
        await fixed.flush()
    amplitude.app.assert_exactly_once(outcomes.ids(Outcome.DELIVERED))
    assert len(amplitude.app.ingested_events()) == 6


async def test_after_close_events_are_reported_not_raised(amplitude, make_emitter, outcomes):
    emitter = make_emitter()
    async with emitter:
        pass
    assert not emitter.track("late", user_id="user-00001")
    assert outcomes.reasons() == {"closed": 1}
    await emitter.flush()                            # closed: nothing to wait for
    with pytest.raises(RuntimeError):
        async with emitter:
            pass


async def test_flush_needs_an_open_emitter(make_emitter):
    emitter = make_emitter()
    with pytest.raises(RuntimeError, match="async with"):
        await emitter.flush()
    await emitter.aclose()


async def test_an_outcome_callback_that_raises_is_logged(amplitude, make_emitter, caplog):
    def callback(event, outcome, reason):
        raise ValueError("oops")

    async with make_emitter(on_outcome=callback) as emitter:
        track_users(emitter, 2)
        await emitter.flush()
        assert emitter.stats.delivered == 2
    assert "on_outcome raised" in caplog.text


async def test_a_caller_http_client_is_left_open(amplitude, make_emitter):
    import httpx

    async with httpx.AsyncClient() as http:
        async with make_emitter(http_client=http) as emitter:
            track_users(emitter, 1)
        assert not http.is_closed
        assert (await http.post(amplitude.http_v2, content=b"")).status_code == 400
