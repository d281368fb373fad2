"""The fake Amplitude itself, so that a broken harness is not taken for an emitter bug."""

import gzip
import json

import httpx
import pytest

from fake_amplitude import API_KEY

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def event(i, user="user-00001", **fields):
    return {"event_type": "e", "user_id": user, "insert_id": f"id-{i}", "time": 1, **fields}


async def post(url, body, **headers):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient() as http:
        return await http.post(url, content=content, headers=headers)


async def test_request_checks_in_amplitude_order(amplitude):
    url = amplitude.http_v2
    cases = [
        (amplitude.url + "/nowhere", {}, 400, "Invalid request path"),
        (url, b"", 400, "Missing request body"),
        (url, b"{not json", 400, "Invalid JSON request body"),
        (url, {"events": []}, 400, "Request missing required field"),
        (url, {"api_key": API_KEY}, 400, "Request missing required field"),
        (url, {"api_key": "wrong", "events": []}, 400, "Invalid API key: wrong"),
    ]
    for target, body, status, error in cases:
        response = await post(target, body)
        assert (response.status_code, response.json()["error"]) == (status, error)
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 405
    assert (await post(url, {"events": []})).json()["missing_field"] == "api_key"


async def test_size_limits_and_gzip(amplitude):
    amplitude.app.limits["/2/httpapi"].max_events = 3
    body = {"api_key": API_KEY, "events": [event(i) for i in range(4)]}
    response = await post(amplitude.http_v2, body)
    assert response.json() == {"code": 413, "error": "Payload too large"}
    body["events"] = body["events"][:3]
    packed = gzip.compress(json.dumps(body).encode())
    response = await post(amplitude.http_v2, packed, **{"Content-Encoding": "gzip"})
    assert response.json()["events_ingested"] == 3
    bad = await post(amplitude.http_v2, b"not gzip", **{"Content-Encoding": "gzip"})
    assert bad.json()["error"] == "Invalid JSON request body"


@pytest.mark.parametrize("first_only", [False, True], ids=["all", "first-only"])
async def test_per_event_validation_ingests_nothing(amplitude, first_only):
    amplitude.app.first_index_only = first_only
    events = [
        event(0), event(1, time="2024-01-01"), event(2, user="abc"),
        {"user_id": "user-00001"}, event(4, user="null"), event(5, event_properties=[1]),
    ]
    response = await post(amplitude.http_v2, {"api_key": API_KEY, "events": events})
    body = response.json()
    assert response.status_code == 400
    assert body["error"] == "Invalid field values on some events"
    if first_only:
        assert body["events_with_invalid_fields"] == {"time": [1]}
    else:
        assert body["events_with_invalid_fields"] == {"time": [1], "event_properties": [5]}
        assert body["events_with_invalid_id_lengths"] == {"user_id": [2]}
        assert body["events_with_missing_fields"] == {
            "event_type": [3], "user_id_or_device_id": [4],
        }
    assert amplitude.app.ingested_events() == []


async def test_throttles_dedup_and_truncation(amplitude):
    app = amplitude.app
    app.throttle(user_id="user-hot01")
    app.daily_quota = 2
    events = [event(0), event(1, user="user-hot01"), event(2, user="user-busy1")] + [
        event(i, user="user-busy1") for i in range(3, 5)
    ]
    response = await post(amplitude.http_v2, {"api_key": API_KEY, "events": events})
    body = response.json()
    assert response.status_code == 429
    assert body["throttled_users"].keys() == {"user-hot01"}
    assert body["exceeded_daily_quota_users"] == {"user-busy1": 3}
    assert body["throttled_events"] == [1, 2, 3, 4]
    assert app.ingested_events() == []
    app.daily_quota = None
    long = event(9, event_properties={"text": "x" * 2000})
    batch = {"api_key": API_KEY, "events": [event(0), event(0), long]}
    assert (await post(amplitude.http_v2, batch)).json()["events_ingested"] == 2
    assert app.duplicates_dropped() == 1
    stored = {e["insert_id"]: e for e in app.ingested_events()}
    assert len(stored["id-9"]["event_properties"]["text"]) == 1024


async def test_eps_window_and_cooldown_follow_the_fake_clock(amplitude):
    app = amplitude.app
    app.limits["/2/httpapi"].eps_threshold = 0.1  # 3 events per 30 s
    body = {"api_key": API_KEY, "events": [event(i) for i in range(3)]}
    assert (await post(amplitude.http_v2, body)).status_code == 200
    body = {"api_key": API_KEY, "events": [event(3)]}
    assert (await post(amplitude.http_v2, body)).status_code == 429
    app.advance(31)
    assert (await post(amplitude.http_v2, body)).status_code == 200


async def test_scripted_faults(amplitude):
    app = amplitude.app
    body = {"api_key": API_KEY, "events": [event(0)]}
    app.fail(500, ingest=True, times=1)
    app.answer(502, b"<html>bad gateway</html>", times=1)
    app.answer(200, b"", times=1)
    statuses = [(await post(amplitude.http_v2, body)).status_code for _ in range(4)]
    assert statuses == [500, 502, 200, 200]
    assert app.stored_ids() == {"id-0": 1}
    assert app.duplicates_dropped() == 1
    app.reset_connection(times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await post(amplitude.http_v2, body)
    app.hang(5, times=1)
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(amplitude.http_v2, json=body, timeout=0.2)
    every = app.fail(503, every=2, times=2)
    statuses = [(await post(amplitude.http_v2, body)).status_code for _ in range(4)]
    assert statuses == [200, 503, 200, 503] and every.times == 0


async def test_identify_endpoint_is_form_encoded(amplitude):
    identification = json.dumps({"user_id": "user-00001", "user_properties": {"plan": "free"}})
    async with httpx.AsyncClient() as http:
        ok = await http.post(amplitude.url + "/identify",
                             data={"api_key": API_KEY, "identification": identification})
        missing = await http.post(amplitude.url + "/identify", data={"api_key": API_KEY})
    assert (ok.status_code, missing.status_code) == (200, 400)
    assert amplitude.app.identify_updates["user-00001"] == 1
