"""
``await client.get_value(...)`` on a warm :class:`flagstaff.Client` beside
configcat-client's ``get_value``, on the same config and users.

flagstaff's client has downloaded the config once (from an in-process
transport, so nothing leaves the machine) and serves it from memory; each
timed round awaits one evaluation per prebuilt user inside one event loop
turn-around, whose cost is spread over the 1,000 calls of the round.
"""

import asyncio

import httpx
import pytest

import flagstaff
from workloads import PLAN_SPLIT_KEY

SDK_KEY = "configcat-sdk-1/benchmark-benchmark-00/benchmark-benchmark-00"


@pytest.fixture(scope="module")
def warm_client(onboarding_json):
    """A flagstaff client that has its config, and the loop it lives in."""
    loop = asyncio.new_event_loop()
    entered, closing, held = asyncio.Event(), asyncio.Event(), {}

    def cdn(request):
        return httpx.Response(200, text=onboarding_json, headers={"ETag": '"b1"'})

    async def host():
        # The client's task group is entered and left in this one task.
        transport = httpx.MockTransport(cdn)
        async with httpx.AsyncClient(transport=transport) as http:
            async with flagstaff.Client(
                SDK_KEY, polling=flagstaff.ManualPoll(),
                base_url="http://127.0.0.1:9", http_client=http,
            ) as client:
                assert (await client.refresh()).is_success
                held["client"] = client
                entered.set()
                await closing.wait()

    task = loop.create_task(host())
    waiting = loop.create_task(entered.wait())
    loop.run_until_complete(
        asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED))
    if task.done():
        waiting.cancel()
        task.result()           # the client failed to start: say why
    yield loop, held["client"]
    closing.set()
    loop.run_until_complete(task)
    loop.close()


@pytest.mark.benchmark(group="client-get-value")
def test_client_get_value_flagstaff(benchmark, warm_client, onboarding,
                                    flagstaff_users):
    loop, client = warm_client
    config, _ = onboarding

    async def evaluate_all():
        for user in flagstaff_users:
            await client.get_value(PLAN_SPLIT_KEY, "default", user)

    async def values():
        return [await client.get_value(PLAN_SPLIT_KEY, "default", user)
                for user in flagstaff_users]

    # The client serves what the compiled config serves (checked against
    # configcat-client by the onboarding fixture).
    expected = [config.get_value(PLAN_SPLIT_KEY, "default", user)
                for user in flagstaff_users]
    assert loop.run_until_complete(values()) == expected

    benchmark.extra_info.update(library="flagstaff", calls_per_round=len(flagstaff_users))
    benchmark(lambda: loop.run_until_complete(evaluate_all()))


@pytest.mark.benchmark(group="client-get-value")
def test_client_get_value_configcat(benchmark, onboarding, configcat_users):
    _, client = onboarding

    def evaluate_all():
        for user in configcat_users:
            client.get_value(PLAN_SPLIT_KEY, "default", user)

    benchmark.extra_info.update(library="configcat-client",
                                calls_per_round=len(configcat_users))
    benchmark(evaluate_all)
