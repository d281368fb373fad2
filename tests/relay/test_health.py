"""GET /health: every config, loaded or not, without SDK keys in full."""

from __future__ import annotations

import anyio
import httpx
import pytest

from cdn import ONBOARDING_KEY
from relays import FIRST, KEY, SECOND, TOKEN, put, until

from flagstaff.relay import CDNSource, FileSource, etag_of

pytestmark = pytest.mark.anyio

OTHER_KEY = "configcat-sdk-1/flagstaff-test-health/another-config-key-0002"
CDN_KEY = "configcat-sdk-1/flagstaff-test-health/unreachable-config-0003"


async def test_health_reports_each_config_redacted(start, upstream, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(FIRST)
    upstream.app.fail_with(CDN_KEY, 500)
    relay = start(FileSource(KEY, path), CDNSource(CDN_KEY, base_url=upstream.url),
                  admin_token=TOKEN, init_wait=1)
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await put(http, relay, SECOND, sdk_key=OTHER_KEY)).status_code == 200
        async with anyio.create_task_group() as tasks:
            etag = etag_of(FIRST.encode())
            headers = {"If-None-Match": etag, "Prefer": "wait=1"}
            tasks.start_soon(lambda: http.get(relay.config_url(), headers=headers))
            await until(lambda: relay.relay.held == 1)
            response = await http.get(f"{relay.url}/health")

    assert response.status_code == 503  # one config is not loaded
    assert response.headers["cache-control"] == "no-cache"
    for key in (KEY, OTHER_KEY, CDN_KEY, ONBOARDING_KEY):
        assert key not in response.text
    health = response.json()
    assert health["status"] == "unavailable"
    assert (health["held"], health["max_held"]) == (1, 10_000)
    configs = {config["sdk_key"]: config for config in health["configs"]}
    assert set(configs) == {"..." + key[-6:] for key in (KEY, OTHER_KEY, CDN_KEY)}

    served = configs["..." + KEY[-6:]]
    assert (served["source"], served["loaded"], served["etag"]) == ("file", True, etag)
    assert 0 <= served["age"] < 10
    assert served["held"] == 1
    assert served["error"] is None
    published = configs["..." + OTHER_KEY[-6:]]
    assert (published["source"], published["loaded"]) == ("admin", True)
    assert published["etag"] == etag_of(SECOND.encode())
    missing = configs["..." + CDN_KEY[-6:]]
    assert (missing["source"], missing["loaded"]) == ("cdn", False)
    assert missing["etag"] is None
    assert missing["age"] is None
    assert "500" in missing["error"]


async def test_health_is_200_when_every_config_is_loaded(start):
    relay = start(admin_token=TOKEN)
    async with httpx.AsyncClient() as http:
        empty = await http.get(f"{relay.url}/health")
        await put(http, relay, FIRST)
        loaded = await http.get(f"{relay.url}/health")
    assert empty.status_code == 200
    assert empty.json()["configs"] == []
    assert loaded.status_code == 200
    assert loaded.json()["status"] == "ok"
