"""``flagstaff relay``: its arguments, and the command run for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import anyio
import httpx
import pytest

from cdn import free_port
from fake_annotations import API_KEY, APP_ID, SECRET_KEY
from relays import FIRST, KEY, SECOND, TOKEN

from flagstaff import __version__
from flagstaff.cli import main


@pytest.mark.parametrize(("arguments", "message"), [
    ([], "nothing to serve"),
    (["--config", "no-equals-sign"], "SDK_KEY=PATH"),
    (["--config", f"{KEY}=/no/such/file.json"], "No such file"),
    (["--sdk-key", "not-a-configcat-key"], "ConfigCat's format"),
], ids=["no-config", "config-without-path", "missing-file", "bad-sdk-key"])
def test_bad_arguments_exit_2(monkeypatch, capsys, arguments, message):
    monkeypatch.delenv("FLAGSTAFF_RELAY_ADMIN_TOKEN", raising=False)
    assert main(["relay", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith("flagstaff relay: ")
    assert message in error
    assert KEY not in error


def test_a_config_file_that_does_not_decode_exits_2(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"f": []}')
    assert main(["relay", "--config", f"{KEY}={path}"]) == 2
    assert "$.f" in capsys.readouterr().err


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_command_serves_publishes_and_shuts_down_gracefully(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(FIRST)
    port = free_port()
    log = tmp_path / "relay.log"
    environment = {**os.environ, "FLAGSTAFF_RELAY_ADMIN_TOKEN": TOKEN}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flagstaff", "relay", "--config", f"{KEY}={path}",
             "--port", str(port), "--max-held", "50"],
            env=environment, stdout=output, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/configuration-files/{KEY}/config_v6.json"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            with anyio.fail_after(15):
                while True:
                    try:
                        if (await http.get(f"{base}/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert process.poll() is None, log.read_text()
                    await anyio.sleep(0.05)
            first = await http.get(url)
            assert first.text == FIRST
            other = "configcat-sdk-1/flagstaff-command-test/admin-published-01"
            published = await http.put(f"{base}/admin/configs/{other}", content=SECOND,
                                       headers={"Authorization": f"Bearer {TOKEN}"})
            assert published.status_code == 200

            held: list[httpx.Response] = []

            async def hold() -> None:
                held.append(await http.get(url, headers={
                    "If-None-Match": first.headers["etag"], "Prefer": "wait=30"}))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(hold)
                with anyio.fail_after(5):
                    while (await http.get(f"{base}/health")).json()["held"] != 1:
                        await anyio.sleep(0.02)
                process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    (answer,) = held
    assert answer.status_code == 304
    assert answer.headers["preference-applied"] == "wait=30"
    text = log.read_text()
    started = f"flagstaff relay {__version__} on http://127.0.0.1:{port} serving file"
    assert f"{started} ...{KEY[-6:]}" in text
    assert "took effect" in text
    assert "answering 1 held requests" in text
    for secret in (KEY, other, TOKEN):
        assert secret not in text
    assert "Traceback" not in text


def test_annotations_need_their_keys_in_the_environment(monkeypatch, capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(FIRST)
    monkeypatch.setenv("AMPLITUDE_API_KEY", "an-api-key-0123456789")
    monkeypatch.delenv("AMPLITUDE_SECRET_KEY", raising=False)
    monkeypatch.delenv("AMPLITUDE_APP_ID", raising=False)
    assert main(["relay", "--config", f"{KEY}={path}", "--amplitude-annotations"]) == 2
    error = capsys.readouterr().err
    assert "AMPLITUDE_SECRET_KEY, AMPLITUDE_APP_ID" in error
    assert "an-api-key-0123456789" not in error


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_command_annotates_a_changed_config_file(tmp_path, annotation_api):
    path = tmp_path / "config.json"
    path.write_text(FIRST)
    port = free_port()
    log = tmp_path / "relay.log"
    environment = {**os.environ, "AMPLITUDE_API_KEY": API_KEY,
                   "AMPLITUDE_SECRET_KEY": SECRET_KEY, "AMPLITUDE_APP_ID": APP_ID}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flagstaff", "relay", "--config", f"{KEY}={path}",
             "--port", str(port), "--log-level", "debug", "--amplitude-annotations",
             "--amplitude-server-url", annotation_api.url],
            env=environment, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            with anyio.fail_after(15):
                while True:
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/health")
                                ).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert process.poll() is None, log.read_text()
                    await anyio.sleep(0.05)
        path.write_text(SECOND)
        with anyio.fail_after(10):
            while not annotation_api.app.stored():
                assert process.poll() is None, log.read_text()
                await anyio.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    (request,) = annotation_api.app.posts()
    assert request.credentials == (API_KEY, SECRET_KEY)
    assert request.params["label"].startswith(f"flagstaff ...{KEY[-6:]}: premiumBadge")
    text = log.read_text()
    assert "chart annotation" in text and "posted" in text
    assert SECRET_KEY not in text and KEY not in text
    assert "Traceback" not in text
