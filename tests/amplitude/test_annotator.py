"""
The chart annotator against a fake of Amplitude's annotation API: what it
posts, how it retries, and that failures are reported, never raised, and
never carry the secret key.
"""

from __future__ import annotations

import base64
import datetime
import logging
import time

import anyio
import pytest

from amplitude_helpers import wait_until
from fake_amplitude import free_port
from fake_annotations import API_KEY, APP_ID, SECRET_KEY, annotator_options
from flagstaff.amplitude import Annotation, ChartAnnotator
from flagstaff.config import ConfigChange, FlagChange

pytestmark = pytest.mark.anyio


class Reported:
    """Records every ``on_outcome(annotation, error)`` call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Annotation, object]] = []

    def __call__(self, annotation: Annotation, error: object) -> None:
        self.calls.append((annotation, error))

    def errors(self) -> list[object]:
        return [error for _, error in self.calls]


def make(server, secret: str = SECRET_KEY, **options) -> ChartAnnotator:
    options = {**annotator_options(server), **options}
    return ChartAnnotator(API_KEY, secret, APP_ID, **options)


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


async def test_a_posted_annotation_reaches_amplitude_with_its_fields(annotation_api):
    reported = Reported()
    async with make(annotation_api, on_outcome=reported) as annotator:
        assert annotator.post("flagstaff: premiumBadge → true",
                              "premiumBadge: false → true")
        await annotator.flush()
        assert annotator.stats.posted == 1 and annotator.stats.pending == 0

    (request,) = annotation_api.app.posts()
    assert request.path == "/api/2/annotations"
    assert request.credentials == (API_KEY, SECRET_KEY)
    assert request.params == {"app_id": APP_ID, "date": today(),
                              "label": "flagstaff: premiumBadge → true",
                              "details": "premiumBadge: false → true"}
    (stored,) = annotation_api.app.stored()
    assert stored["label"] == "flagstaff: premiumBadge → true"
    assert reported.errors() == [None]
    assert reported.calls[0][0].date == today()


async def test_annotate_posts_now_on_one_chart(annotation_api):
    async with make(annotation_api, chart_id=77) as annotator:
        assert await annotator.annotate("release 1.2") is True
    (request,) = annotation_api.app.posts()
    assert request.params == {"app_id": APP_ID, "date": today(),
                              "label": "release 1.2", "chart_id": "77"}


async def test_post_change_posts_a_change_and_skips_an_empty_one(annotation_api):
    change = ConfigChange((FlagChange("premiumBadge", "false", "true"),), "...le-001")
    async with make(annotation_api) as annotator:
        assert annotator.post_change(ConfigChange()) is False
        assert annotator.post_change(change) is True
        await annotator.flush()
    (request,) = annotation_api.app.posts()
    assert request.params["label"] == "flagstaff ...le-001: premiumBadge → true"
    assert request.params["details"] == "premiumBadge: false → true"


async def test_a_label_is_sent_on_one_line(annotation_api):
    async with make(annotation_api) as annotator:
        assert await annotator.annotate("two\nlines", "detail one\ndetail two")
    (request,) = annotation_api.app.posts()
    assert request.params["label"] == "two lines"
    assert request.params["details"] == "detail one\ndetail two"


async def test_a_wrong_secret_is_reported_not_raised_and_not_retried(
    annotation_api, caplog
):
    reported = Reported()
    async with make(annotation_api, secret="not-the-secret-key-000",
                    on_outcome=reported) as annotator:
        assert annotator.post("flagstaff: x → y") is True
        assert await annotator.annotate("flagstaff: y → z") is False
        await annotator.flush()
        stats = annotator.stats
    assert (stats.posted, stats.failed, stats.retried) == (0, 2, 0)
    assert [request.status for request in annotation_api.app.posts()] == [401, 401]
    assert all("refused the API key" in error for error in reported.errors())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("failed: HTTP 401" in r.getMessage() for r in warnings)
    assert annotation_api.app.stored() == []


async def test_500_every_time_is_retried_a_bounded_number_of_times(annotation_api,
                                                                   caplog):
    annotation_api.app.fail(500)
    reported = Reported()
    async with make(annotation_api, max_retries=3, on_outcome=reported) as annotator:
        started = time.monotonic()
        assert annotator.post("flagstaff: x → y") is True
        assert time.monotonic() - started < 0.05     # enqueued, not sent
        with anyio.fail_after(5):
            await annotator.flush()
        stats = annotator.stats
    assert len(annotation_api.app.posts()) == 4
    assert (stats.posted, stats.failed, stats.retried) == (0, 1, 3)
    assert reported.errors() == ["HTTP 500 (4 attempts)"]
    assert any("failed: HTTP 500 (4 attempts)" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


async def test_a_429_is_retried_after_its_retry_after(annotation_api):
    annotation_api.app.fail(429, times=1, retry_after="0.3")
    async with make(annotation_api, max_backoff=1.0) as annotator:
        assert await annotator.annotate("flagstaff: x → y") is True
        assert annotator.stats.retried == 1
    first, second = annotation_api.app.posts()
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.29


async def test_retry_after_is_bounded_by_max_backoff(annotation_api):
    annotation_api.app.fail(503, times=1, retry_after="3600")
    async with make(annotation_api, max_backoff=0.2) as annotator:
        with anyio.fail_after(3):
            assert await annotator.annotate("flagstaff: x → y") is True


async def test_an_unreachable_amplitude_is_reported(caplog):
    reported = Reported()
    url = f"http://127.0.0.1:{free_port()}"
    async with ChartAnnotator(API_KEY, SECRET_KEY, APP_ID, server_url=url,
                              max_retries=2, backoff=0.01, max_backoff=0.02,
                              on_outcome=reported) as annotator:
        with anyio.fail_after(5):
            assert await annotator.annotate("flagstaff: x → y") is False
    (error,) = reported.errors()
    assert "ConnectError" in error and "(3 attempts)" in error


async def test_a_hanging_amplitude_blocks_neither_post_nor_close(annotation_api):
    annotation_api.app.hang()
    reported = Reported()
    annotator = make(annotation_api, timeout=5.0, close_deadline=0.3,
                     on_outcome=reported)
    with anyio.fail_after(5):
        async with annotator:
            assert annotator.post("flagstaff: a → b")
            assert annotator.post("flagstaff: c → d")
            # The first is held by Amplitude, the second waits its turn.
            await wait_until(lambda: annotation_api.app.arrivals == 1, 2)
            started = time.monotonic()
        assert time.monotonic() - started < 2.0
    assert annotator.stats.dropped == 2
    assert reported.errors() == ["dropped: the annotator closed first"] * 2
    assert annotator.post("flagstaff: too late") is False
    assert reported.errors()[-1] == "dropped: the annotator is closed"


async def test_a_short_timeout_ends_a_hanging_post(annotation_api):
    annotation_api.app.hang()
    async with make(annotation_api, timeout=0.2, max_retries=1) as annotator:
        with anyio.fail_after(5):
            assert await annotator.annotate("flagstaff: x → y") is False
        assert annotator.stats.failed == 1


async def test_a_full_queue_drops_the_new_annotation(annotation_api):
    reported = Reported()
    annotator = make(annotation_api, max_queue=2, on_outcome=reported)
    # Not opened yet: nothing is sent, so the queue fills.
    assert annotator.post("one") and annotator.post("two")
    assert annotator.post("three") is False
    assert reported.errors() == ["dropped: the queue is full"]
    async with annotator:
        await annotator.flush()
    assert [a["label"] for a in annotation_api.app.stored()] == ["one", "two"]


async def test_a_400_is_not_retried(annotation_api):
    async with make(annotation_api) as annotator:
        assert await annotator.annotate("") is False
        assert annotator.stats.retried == 0
    assert [request.status for request in annotation_api.app.posts()] == [400]


async def test_an_on_outcome_that_raises_is_logged(annotation_api, caplog):
    def broken(annotation, error):
        raise RuntimeError("the callback broke")

    async with make(annotation_api, on_outcome=broken) as annotator:
        assert await annotator.annotate("flagstaff: x → y") is True
    assert any("on_outcome raised" in r.getMessage() for r in caplog.records)


async def test_the_secret_key_appears_in_no_log_repr_or_error(annotation_api, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("flagstaff", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    reported = Reported()
    annotation_api.app.fail(500, times=1)
    async with make(annotation_api, on_outcome=reported) as annotator:
        assert await annotator.annotate("flagstaff: retried then posted")
        annotation_api.app.fail(429, times=1)
        assert await annotator.annotate("flagstaff: throttled then posted")
        text = repr(annotator)
    async with make(annotation_api, secret=SECRET_KEY[::-1],
                    on_outcome=reported) as refused:
        assert not await refused.annotate("flagstaff: refused")
    gone = f"http://127.0.0.1:{free_port()}"
    async with ChartAnnotator(API_KEY, SECRET_KEY, APP_ID, server_url=gone,
                              max_retries=0, on_outcome=reported) as unreachable:
        assert not await unreachable.annotate("flagstaff: unreachable")

    assert any(r.name.startswith("httpx") for r in caplog.records)
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    encoded = base64.b64encode(f"{API_KEY}:{SECRET_KEY}".encode()).decode()
    logged = "\n".join(
        [r.getMessage() for r in caplog.records] + [caplog.text]
        + [str(error) for error in reported.errors()] + [text]
    )
    assert SECRET_KEY not in logged
    assert encoded not in logged
    assert len(reported.calls) == 4


async def test_the_annotator_sends_only_when_open(annotation_api):
    annotator = make(annotation_api)
    with pytest.raises(RuntimeError, match="async with"):
        await annotator.annotate("x")
    with pytest.raises(RuntimeError, match="async with"):
        await annotator.flush()
    async with annotator:
        pass
    with pytest.raises(RuntimeError, match="once"):
        async with annotator:
            pass
    assert annotation_api.app.posts() == []


@pytest.mark.parametrize(("zone", "url"), [
    ("US", "https://amplitude.com/api/2/annotations"),
    ("EU", "https://analytics.eu.amplitude.com/api/2/annotations"),
    ("eu", "https://analytics.eu.amplitude.com/api/2/annotations"),
], ids=["us", "eu", "eu-lower-case"])
def test_the_host_follows_the_server_zone(zone, url):
    assert ChartAnnotator(API_KEY, SECRET_KEY, APP_ID, server_zone=zone).url == url


def test_a_server_url_gets_the_api_path():
    annotator = ChartAnnotator(API_KEY, SECRET_KEY, 1, server_url="http://127.0.0.1:9/")
    assert annotator.url == "http://127.0.0.1:9/api/2/annotations"
    assert SECRET_KEY not in repr(annotator)


@pytest.mark.parametrize(("arguments", "message"), [
    (("", SECRET_KEY, APP_ID), "API key"),
    ((API_KEY, " ", APP_ID), "secret key"),
    ((API_KEY, SECRET_KEY, "project-1"), "app id"),
], ids=["no-api-key", "no-secret", "app-id-not-a-number"])
def test_bad_arguments_are_value_errors(arguments, message):
    with pytest.raises(ValueError, match=message) as raised:
        ChartAnnotator(*arguments)
    assert SECRET_KEY not in str(raised.value)


def test_an_unknown_zone_is_a_value_error():
    with pytest.raises(ValueError, match="server_zone"):
        ChartAnnotator(API_KEY, SECRET_KEY, APP_ID, server_zone="APAC")


async def test_an_error_of_the_block_propagates_as_raised(annotation_api):
    with pytest.raises(KeyError, match="the caller's"):
        async with make(annotation_api):
            raise KeyError("the caller's")
