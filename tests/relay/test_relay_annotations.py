"""
The relay's on_flags_changed hook: told what a publish changed, never on a
key's first config, never able to delay or fail the publish; and chart
annotations posted through it to a fake of Amplitude's annotation API.
"""

from __future__ import annotations

import json
import logging
import time

import anyio
import httpx
import pytest

from fake_annotations import API_KEY, APP_ID, SECRET_KEY, annotator_options
from relays import FIRST, KEY, SECOND, THIRD, TOKEN, put, until

import flagstaff
from flagstaff.amplitude import ChartAnnotator
from flagstaff.config import ConfigChange
from flagstaff.relay import FileSource, Relay

pytestmark = pytest.mark.anyio

NAME = "..." + KEY[-6:]
BADGE_BEFORE = "plan EQUALS premium: true; otherwise false"
BADGE_AFTER = "plan EQUALS premium: true; otherwise true"
FREE = flagstaff.User("u1", custom={"plan": "free"})


def annotator(server, secret: str = SECRET_KEY, **options) -> ChartAnnotator:
    return ChartAnnotator(API_KEY, secret, APP_ID,
                          **{**annotator_options(server), **options})


class Recorder:
    def __init__(self) -> None:
        self.changes: list[ConfigChange] = []

    def __call__(self, change: ConfigChange) -> None:
        self.changes.append(change)


def test_publish_tells_the_hook_what_changed_but_not_the_first_config():
    recorder = Recorder()
    relay = Relay(admin_token=TOKEN, on_flags_changed=recorder)
    assert relay.publish(KEY, FIRST.encode())
    assert recorder.changes == []

    assert relay.publish(KEY, SECOND.encode())
    (change,) = recorder.changes
    assert change.name == NAME
    assert change.keys == ("premiumBadge",)
    assert change.details == f"premiumBadge: {BADGE_BEFORE} → {BADGE_AFTER}"

    # The same bytes are no publish; other bytes serving the same are no change.
    assert not relay.publish(KEY, SECOND.encode())
    assert relay.publish(KEY, json.dumps(json.loads(SECOND), indent=2).encode())
    assert len(recorder.changes) == 1


def test_a_hook_that_raises_is_logged_and_the_publish_stands(caplog):
    def broken(change):
        raise RuntimeError("the hook broke")

    relay = Relay(admin_token=TOKEN, on_flags_changed=broken)
    relay.publish(KEY, FIRST.encode())
    assert relay.publish(KEY, THIRD.encode()) is True
    (config,) = relay.health()["configs"]
    assert config["etag"] == flagstaff.relay.etag_of(THIRD.encode())
    assert any("on_flags_changed hook" in r.getMessage() and "the hook broke"
               in r.getMessage() for r in caplog.records)


async def test_a_file_source_change_tells_the_hook(start, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(FIRST)
    recorder = Recorder()
    running = start(FileSource(KEY, path, interval=0.05), on_flags_changed=recorder)
    async with httpx.AsyncClient() as http:
        assert (await http.get(running.config_url())).text == FIRST
        path.write_text(THIRD)
        await until(lambda: recorder.changes, 5)
    (change,) = recorder.changes
    assert change.keys == ("onboardingFeature",)
    assert change.flags[0].after.endswith("otherwise feature3")


async def test_an_admin_publish_becomes_a_chart_annotation(start, annotation_api):
    chart = annotator(annotation_api)
    running = start(admin_token=TOKEN, on_flags_changed=chart.post_change,
                    services=[chart])
    async with httpx.AsyncClient() as http:
        assert (await put(http, running, FIRST)).status_code == 200
        assert (await put(http, running, SECOND)).status_code == 200
        await until(lambda: annotation_api.app.stored(), 5)
        assert (await put(http, running, SECOND)).json()["changed"] is False

    (request,) = annotation_api.app.posts()
    assert request.credentials == (API_KEY, SECRET_KEY)
    assert request.params["app_id"] == APP_ID
    label = f"flagstaff {NAME}: premiumBadge → {BADGE_AFTER}"
    assert request.params["label"] == label
    details = f"premiumBadge: {BADGE_BEFORE} → {BADGE_AFTER}"
    assert request.params["details"] == details
    assert len(request.params["date"]) == 10


@pytest.mark.parametrize("failure", ["500-every-time", "wrong-secret"])
async def test_a_failing_annotation_api_leaves_the_publish_intact(
    start, annotation_api, failure, caplog
):
    caplog.set_level(logging.DEBUG)
    failures: list[str] = []
    if failure == "500-every-time":
        annotation_api.app.fail(500)
        chart = annotator(annotation_api, max_retries=2,
                          on_outcome=lambda a, error: failures.append(error))
    else:
        chart = annotator(annotation_api, secret="a-wrong-secret-key-0000",
                          on_outcome=lambda a, error: failures.append(error))
    running = start(admin_token=TOKEN, on_flags_changed=chart.post_change,
                    services=[chart])
    client = flagstaff.Client(KEY, base_url=running.url,
                              polling=flagstaff.LongPoll(wait=5))
    async with httpx.AsyncClient() as http:
        assert (await put(http, running, FIRST)).status_code == 200
        async with client:
            assert await client.get_value("premiumBadge", None, FREE) is False
            await until(lambda: running.relay.held == 1)
            started = time.monotonic()
            published = await put(http, running, SECOND)
            took = time.monotonic() - started
            with anyio.fail_after(3):
                while not await client.get_value("premiumBadge", None, FREE):
                    await anyio.sleep(0.01)
        served = await http.get(running.config_url())
        await until(lambda: failures, 5)

    assert published.status_code == 200 and published.json()["changed"] is True
    assert took < 1.0
    assert served.text == SECOND
    assert chart.stats.failed == 1 and chart.stats.posted == 0
    expected = "HTTP 500 (3 attempts)" if failure == "500-every-time" else "HTTP 401"
    assert failures[0].startswith(expected)
    assert annotation_api.app.stored() == []
    assert any("chart annotation" in r.getMessage() and "failed" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    assert SECRET_KEY not in caplog.text


async def test_a_hanging_annotation_api_does_not_delay_the_publish(
    start, annotation_api
):
    annotation_api.app.hang()
    chart = annotator(annotation_api, timeout=5.0, close_deadline=0.5)
    running = start(admin_token=TOKEN, on_flags_changed=chart.post_change,
                    services=[chart])
    async with httpx.AsyncClient() as http:
        assert (await put(http, running, FIRST)).status_code == 200
        for text in (SECOND, THIRD):
            started = time.monotonic()
            assert (await put(http, running, text)).status_code == 200
            assert time.monotonic() - started < 1.0
        assert (await http.get(running.config_url())).text == THIRD
        await until(lambda: annotation_api.app.arrivals == 1, 5)
    annotation_api.app.release()
