"""
flagstaff.Client in LongPoll mode against the relay, end to end on
127.0.0.1: a publish reaches every held client at once; a server that does
not hold makes the client fall back to polling and still converge; the
waiter cap's Retry-After; a relay restart; a bad upstream body.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import AsyncExitStack, contextmanager

import anyio
import httpx
import pytest

from cdn import HOST
from relays import FIRST, KEY, SECOND, TOKEN, put, run_relay, until

import flagstaff
from flagstaff.relay import Relay
from flagstaff.relay._server import RelayServer, server_config

pytestmark = pytest.mark.anyio

FREE = flagstaff.User("u1", custom={"plan": "free"})


def _client(url: str, wait: float = 5, **polling) -> flagstaff.Client:
    return flagstaff.Client(KEY, base_url=url,
                            polling=flagstaff.LongPoll(wait=wait, **polling))


async def _badges(clients) -> list:
    # premiumBadge is False for a free user in FIRST, True in SECOND.
    return [await client.get_value("premiumBadge", None, FREE) for client in clients]


async def test_a_publish_reaches_every_held_client_at_once():
    with run_relay(Relay(admin_token=TOKEN)) as running:
        async with httpx.AsyncClient() as http:
            assert (await put(http, running, FIRST)).status_code == 200
            clients = [_client(running.url) for _ in range(20)]
            async with AsyncExitStack() as stack:
                for client in clients:
                    await stack.enter_async_context(client)
                assert await _badges(clients) == [False] * 20
                await until(lambda: running.relay.held == 20)

                published = time.monotonic()
                assert (await put(http, running, SECOND)).status_code == 200
                with anyio.fail_after(2):
                    while await _badges(clients) != [True] * 20:
                        await anyio.sleep(0.005)
                took = time.monotonic() - published
    # "milliseconds": all twenty saw it long before any poll interval
    assert took < 1.0


async def test_a_server_that_does_not_hold_is_polled_and_converges(upstream):
    # The fake CDN answers Prefer requests at once, without Preference-Applied.
    upstream.app.publish(KEY, FIRST)
    client = _client(upstream.url, poll_interval=1, retry_hold_after=60)
    async with client:
        assert await client.get_value("premiumBadge", None) is False
        upstream.app.publish(KEY, SECOND)
        with anyio.fail_after(5):
            while not await client.get_value("premiumBadge", None):
                await anyio.sleep(0.02)
    requests = upstream.app.requests_for(KEY)
    assert requests[0].headers.get("prefer") is None       # first one unheld
    assert any(r.headers.get("prefer") == "wait=5" for r in requests)
    # after the fallback it polls plainly, about once a second, not in a loop
    assert len(requests) < 12


async def test_the_waiter_cap_sends_clients_back_later():
    with run_relay(Relay(admin_token=TOKEN, max_held=1, retry_after=1)) as running:
        async with httpx.AsyncClient() as http:
            await put(http, running, FIRST)
            clients = [_client(running.url) for _ in range(3)]
            async with AsyncExitStack() as stack:
                for client in clients:
                    await stack.enter_async_context(client)
                await until(lambda: running.relay.held == 1)
                await put(http, running, SECOND)
                # the held one wakes now; the others come back after
                # Retry-After and see it on their plain answer
                with anyio.fail_after(6):
                    while await _badges(clients) != [True, True, True]:
                        await anyio.sleep(0.02)


@contextmanager
def _relay_on(port: int, relay: Relay):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    server = RelayServer(server_config(relay, HOST, port, shutdown_timeout=2,
                                       log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.01)
        yield relay
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def test_clients_keep_serving_through_a_relay_restart():
    probe = socket.socket()
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    url = f"http://{HOST}:{port}"
    anyone = flagstaff.User("u2")

    async def publish(text):
        async with httpx.AsyncClient() as http:
            response = await http.put(f"{url}/admin/configs/{KEY}", content=text,
                                      headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200

    client = _client(url)
    with _relay_on(port, Relay(admin_token=TOKEN)):
        await publish(FIRST)
        await client.__aenter__()
        assert await client.get_value("premiumBadge", None, anyone) is False
    try:
        # The relay is gone: the client keeps serving what it has.
        assert await client.get_value("premiumBadge", None, anyone) is False
        await anyio.sleep(0.5)
        assert await client.get_value("premiumBadge", None, anyone) is False

        # A relay comes back on the same address with a new config; the
        # client, backing off with jitter, reconnects and converges.
        with _relay_on(port, Relay(admin_token=TOKEN)):
            await publish(SECOND)
            with anyio.fail_after(15):
                while not await client.get_value("premiumBadge", None, anyone):
                    await anyio.sleep(0.05)
    finally:
        await client.__aexit__(None, None, None)
