"""The public surface of flagstaff.relay, and its app factory."""

from __future__ import annotations

import pytest

import flagstaff.relay
from flagstaff.relay import CDNSource, FileSource, Relay, create_app

from relays import KEY


def test_all_is_sorted_and_complete():
    public = {name for name in dir(flagstaff.relay) if not name.startswith("_")}
    assert list(flagstaff.relay.__all__) == sorted(flagstaff.relay.__all__)
    assert set(flagstaff.relay.__all__) == public


def test_create_app_builds_a_relay_with_its_sources(tmp_path):
    path = tmp_path / "config.json"
    other = "configcat-sdk-1/flagstaff-relay-api-te/st-of-create-app-00001"
    relay = create_app(files={KEY: path}, sdk_keys=[other], admin_token="t" * 20,
                       max_held=5)
    assert isinstance(relay, Relay)
    configs = relay.health()["configs"]
    kinds = {config["sdk_key"]: config["source"] for config in configs}
    assert kinds == {"..." + KEY[-6:]: "file", "..." + other[-6:]: "cdn"}
    assert relay.health()["max_held"] == 5


@pytest.mark.parametrize("limits", [
    {"max_held": -1}, {"max_wait": 56}, {"max_wait": 0}, {"admin_token": " "},
], ids=["negative-cap", "wait-above-55", "wait-zero", "blank-token"])
def test_limits_out_of_range_are_refused(limits):
    with pytest.raises(ValueError):
        Relay(**limits)


def test_two_sources_of_one_key_are_refused(tmp_path):
    with pytest.raises(ValueError, match=KEY[-6:]) as caught:
        Relay([FileSource(KEY, tmp_path / "a.json"), CDNSource(KEY)])
    assert KEY not in str(caught.value)
