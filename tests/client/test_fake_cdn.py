"""The fake CDN itself, so that a broken harness is not taken for a client bug."""

import httpx
import pytest

from cdn import MATRIX_KEY, MATRIX_TEXT, etag_of

pytestmark = pytest.mark.anyio


def config_url(base: str, sdk_key: str) -> str:
    return f"{base}/configuration-files/{sdk_key}/config_v6.json"


async def test_serves_etag_304_and_records(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    async with httpx.AsyncClient() as http:
        first = await http.get(config_url(cdn.url, MATRIX_KEY))
        etag = first.headers["etag"]
        second = await http.get(
            config_url(cdn.url, MATRIX_KEY), headers={"If-None-Match": etag}
        )
        missing = await http.get(config_url(cdn.url, "nobody/nothing"))

    assert (first.status_code, first.text) == (200, MATRIX_TEXT)
    assert etag == etag_of(MATRIX_TEXT)
    assert (second.status_code, second.content) == (304, b"")
    assert missing.status_code == 404
    recorded = cdn.app.requests_for(MATRIX_KEY)
    assert [r.status for r in recorded] == [200, 304]
    assert recorded[1].headers["if-none-match"] == etag


async def test_misbehaviours(cdn):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    url = config_url(cdn.url, MATRIX_KEY)
    async with httpx.AsyncClient() as http:
        cdn.app.fail_with(MATRIX_KEY, 500)
        assert (await http.get(url)).status_code == 500
        cdn.app.truncate(MATRIX_KEY)
        assert (await http.get(url)).text == MATRIX_TEXT[: len(MATRIX_TEXT) // 2]
        cdn.app.delay(MATRIX_KEY, 0.5)
        with pytest.raises(httpx.ReadTimeout):
            await http.get(url, timeout=0.1)
        cdn.app.fix(MATRIX_KEY)
        assert (await http.get(url)).text == MATRIX_TEXT
