"""
Flag overrides with a fake CDN: LOCAL_ONLY never downloads; LOCAL_OVER_REMOTE
and REMOTE_OVER_LOCAL merge per setting key, each setting keeping its own
salt and segments.
"""

import json
import os

import anyio
import pytest

from cdn import MATRIX_KEY, MATRIX_TEXT, SEGMENTS_KEY, SEGMENTS_TEXT
from configcat_data import path
from flagstaff import (
    Client,
    FlagError,
    FlagOverrides,
    ManualPoll,
    OverrideBehaviour,
    User,
)

pytestmark = pytest.mark.anyio

SIMPLE_FILE = path("misc/test-simple.json")
FULL_FILE = path("misc/test_override_segments_v6.json")

SIMPLE_VALUES = {
    "disabledFeature": False,
    "enabledFeature": True,
    "intSetting": 5,
    "doubleSetting": 3.14,
    "stringSetting": "test",
}

#: the segment flag of the full override file: on for developers not in beta
DEVELOPER = User("john", email="john@example.com")
BETA_USER = User("jane", email="jane@example.com")


@pytest.mark.parametrize(
    "source",
    [SIMPLE_VALUES, SIMPLE_FILE, path("misc/test.json")],
    ids=["dict", "simple-file", "full-file"],
)
async def test_local_only_makes_no_request(cdn, source):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    overrides = FlagOverrides(source, OverrideBehaviour.LOCAL_ONLY)
    async with Client(MATRIX_KEY, base_url=cdn.url, overrides=overrides) as client:
        values = await client.get_all_values()
        details = await client.get_value_details("intSetting", 0)
        refreshed = await client.refresh()

    assert values == SIMPLE_VALUES
    assert type(values["intSetting"]) is int and type(values["doubleSetting"]) is float
    assert (details.value, details.is_default_value) == (5, False)
    assert not refreshed.is_success
    assert cdn.app.requests == []


async def test_local_only_takes_any_sdk_key(cdn):
    overrides = FlagOverrides(SIMPLE_VALUES, OverrideBehaviour.LOCAL_ONLY)
    client = Client("not a ConfigCat key", base_url=cdn.url, overrides=overrides)
    async with client:
        assert await client.get_value("enabledFeature", False) is True


async def test_local_only_full_form_evaluates_rules_and_segments(cdn):
    overrides = FlagOverrides(FULL_FILE, OverrideBehaviour.LOCAL_ONLY)
    async with Client(MATRIX_KEY, base_url=cdn.url, overrides=overrides) as client:
        flag = "developerAndBetaUserSegment"
        assert await client.get_value(flag, None, DEVELOPER) is True
        assert await client.get_value(flag, None, BETA_USER) is False
        assert await client.get_value(flag, None) is False

    assert cdn.app.requests == []


@pytest.mark.parametrize(
    ("behaviour", "shared_value"),
    [
        (OverrideBehaviour.LOCAL_OVER_REMOTE, "Dog"),
        (OverrideBehaviour.REMOTE_OVER_LOCAL, "Cat"),
    ],
    ids=["local-over-remote", "remote-over-local"],
)
async def test_dict_overrides_merge_per_key(cdn, behaviour, shared_value):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    overrides = FlagOverrides({"stringDefaultCat": "Dog", "localOnly": 7}, behaviour)
    client = Client(
        MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url, overrides=overrides
    )
    async with client:
        assert (await client.refresh()).is_success
        values = await client.get_all_values()
        assert await client.get_value("stringDefaultCat", "") == shared_value
        assert await client.get_value("localOnly", 0) == 7
        assert await client.get_value("keySampleText", "") == "Cat"

    remote = set(json.loads(MATRIX_TEXT)["f"])
    assert set(values) == remote | {"localOnly"}
    assert values["stringDefaultCat"] == shared_value
    assert len(cdn.app.requests) == 1


@pytest.mark.parametrize(
    "behaviour",
    [OverrideBehaviour.LOCAL_OVER_REMOTE, OverrideBehaviour.REMOTE_OVER_LOCAL],
    ids=["local-over-remote", "remote-over-local"],
)
async def test_full_form_overrides_keep_their_own_salt_and_segments(cdn, behaviour):
    # Both configs target with hashed emails and segments, each with its own
    # salt: a merged setting must still match with its source's salt.
    cdn.app.publish(SEGMENTS_KEY, SEGMENTS_TEXT)
    overrides = FlagOverrides(FULL_FILE, behaviour)
    client = Client(
        SEGMENTS_KEY, polling=ManualPoll(), base_url=cdn.url, overrides=overrides
    )
    async with client:
        assert (await client.refresh()).is_success
        local = "developerAndBetaUserSegment"
        assert await client.get_value(local, None, DEVELOPER) is True
        assert await client.get_value(local, None, BETA_USER) is False
        # from testmatrix_segments_old.csv
        remote = "featureWithSegmentTargeting"
        assert await client.get_value(remote, None, DEVELOPER) is True
        kate = User("kate@example.com", email="kate@example.com")
        assert await client.get_value(remote, None, kate) is False
        assert await client.get_value("featureWithNegatedSegmentTargeting", None, kate)


@pytest.mark.parametrize(
    "behaviour",
    [OverrideBehaviour.LOCAL_OVER_REMOTE, OverrideBehaviour.REMOTE_OVER_LOCAL],
    ids=["local-over-remote", "remote-over-local"],
)
async def test_overrides_serve_while_the_remote_config_is_unavailable(cdn, behaviour):
    # configcat-client merges with an empty remote config in this case
    cdn.app.fail_with(MATRIX_KEY, 500)
    overrides = FlagOverrides({"localOnly": 7}, behaviour)
    client = Client(
        MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url, overrides=overrides
    )
    async with client:
        assert not (await client.refresh()).is_success
        assert await client.get_value("localOnly", 0) == 7


async def test_an_override_file_is_read_again_when_it_changes(cdn, tmp_path):
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    file = tmp_path / "overrides.json"
    file.write_text(json.dumps({"flags": {"stringDefaultCat": "Dog"}}))
    overrides = FlagOverrides(file, OverrideBehaviour.LOCAL_ONLY)
    async with Client(MATRIX_KEY, base_url=cdn.url, overrides=overrides) as client:
        assert await client.get_value("stringDefaultCat", "") == "Dog"
        file.write_text(json.dumps({"flags": {"stringDefaultCat": "Horse"}}))
        stat = file.stat()
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        # flagstaff looks at the file at most once a second (configcat-client
        # at every evaluation)
        with anyio.fail_after(2.5):
            while await client.get_value("stringDefaultCat", "") != "Horse":
                await anyio.sleep(0.05)


async def test_a_missing_override_file_is_reported_not_fatal(cdn, hooks, tmp_path):
    # configcat-client logs error 1302 and serves the remote config
    cdn.app.publish(MATRIX_KEY, MATRIX_TEXT)
    overrides = FlagOverrides(
        tmp_path / "missing.json", OverrideBehaviour.LOCAL_OVER_REMOTE
    )
    client = Client(
        MATRIX_KEY, polling=ManualPoll(), base_url=cdn.url, overrides=overrides,
        **hooks.kwargs(),
    )
    async with client:
        await client.refresh()
        assert await client.get_value("keySampleText", "none") == "Cat"

    assert hooks.errors


async def test_a_missing_local_only_file_leaves_the_caller_intact(cdn, hooks, tmp_path):
    # Whether entering reports the file or raises, the caller's task must be
    # left as it was: no task group of the client's may stay open in it.
    overrides = FlagOverrides(tmp_path / "missing.json", OverrideBehaviour.LOCAL_ONLY)
    outcome = []

    async def use_client():
        client = Client(
            MATRIX_KEY, base_url=cdn.url, overrides=overrides, **hooks.kwargs()
        )
        try:
            async with client:
                outcome.append(await client.get_value("keySampleText", "none"))
        except (OSError, FlagError) as exc:
            outcome.append(exc)
        with anyio.move_on_after(0.05):
            await anyio.sleep(1)

    with anyio.fail_after(3):
        async with anyio.create_task_group() as group:
            group.start_soon(use_client)

    assert outcome == ["none"] or isinstance(outcome[0], (OSError, FlagError))
    assert cdn.app.requests == []
