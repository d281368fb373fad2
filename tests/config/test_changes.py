"""describe_change: which flags serve something different, told in short lines."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import flagstaff
from configcat_data import REPO, path
from flagstaff.config import ConfigChange, FlagChange, decode_config, describe_change
from flagstaff.config._changes import MAX_LABEL, MAX_SUMMARY

ONBOARDING = json.loads(
    (REPO / "src" / "flagstaff" / "examples" / "onboarding.json").read_text()
)
SPLIT = ("Free plan: default 25% / feature1 25% / feature2 25% / feature3 25%; "
         "otherwise default")
BADGE = "plan EQUALS premium: true; otherwise false"


def config_of(document: dict) -> flagstaff.Config:
    return flagstaff.Config.from_json(json.dumps(document))


def edited(**flags) -> dict:
    """The example config with some settings replaced (None removes one)."""
    document = copy.deepcopy(ONBOARDING)
    for key, setting in flags.items():
        if setting is None:
            del document["f"][key]
        else:
            document["f"][key] = setting
    return document


def feature2_for_the_free_plan() -> dict:
    document = copy.deepcopy(ONBOARDING)
    rule = document["f"]["onboardingFeature"]["r"][0]
    del rule["p"]
    rule["s"] = {"v": {"s": "feature2"}, "i": "f2a1b2c3"}
    return document


ROLLED_OUT = config_of(feature2_for_the_free_plan())


def test_rolling_feature2_out_to_the_free_plan_is_one_flag_change():
    change = describe_change(config_of(ONBOARDING), ROLLED_OUT)

    after = "Free plan: feature2; otherwise default"
    assert change.flags == (FlagChange("onboardingFeature", SPLIT, after),)
    assert change
    assert change.label == f"flagstaff: onboardingFeature → {after}"
    assert change.details == f"onboardingFeature: {SPLIT} → {after}"


def test_the_name_goes_into_the_label():
    change = describe_change(config_of(ONBOARDING), ROLLED_OUT, name="...le-001")
    assert change.label.startswith("flagstaff ...le-001: onboardingFeature → ")
    assert change.name == "...le-001"


def test_identical_configs_make_an_empty_change():
    first, second = config_of(ONBOARDING), config_of(ONBOARDING)
    for change in (describe_change(first, second), describe_change(first, first)):
        assert not change
        assert change.flags == () and len(change) == 0
        assert change.details == ""
        assert change.label == "flagstaff: no flag changed"


def test_configs_and_models_are_described_alike():
    old, new = config_of(ONBOARDING), config_of(feature2_for_the_free_plan())
    assert describe_change(old.model, new.model) == describe_change(old, new)
    assert describe_change(old, new.model) == describe_change(old.model, new)


@pytest.mark.parametrize("wrong", [{"f": {}}, b"{}", 42], ids=["dict", "bytes", "int"])
def test_anything_but_a_config_is_a_type_error(wrong):
    with pytest.raises(TypeError, match="config"):
        describe_change(None, wrong)
    with pytest.raises(TypeError, match="config"):
        describe_change(wrong, config_of(ONBOARDING))


def test_without_an_old_config_every_flag_is_added():
    change = describe_change(None, config_of(ONBOARDING))
    assert change.flags == (
        FlagChange("onboardingFeature", None, SPLIT),
        FlagChange("premiumBadge", None, BADGE),
    )
    label = "flagstaff: 2 flags changed (onboardingFeature, premiumBadge)"
    assert change.label == label
    assert change.details.splitlines() == [
        f"onboardingFeature: (added) → {SPLIT}",
        f"premiumBadge: (added) → {BADGE}",
    ]


def test_a_removed_flag_and_a_new_one():
    document = edited(premiumBadge=None,
                      darkMode={"t": 0, "v": {"b": True}, "i": "dm000001"})
    change = describe_change(config_of(ONBOARDING), config_of(document))
    assert change.flags == (
        FlagChange("darkMode", None, "true"),
        FlagChange("premiumBadge", BADGE, None),
    )
    assert change.details.splitlines() == [
        "darkMode: (added) → true",
        f"premiumBadge: {BADGE} → (removed)",
    ]
    without_badge = config_of(edited(premiumBadge=None))
    only_removed = describe_change(config_of(ONBOARDING), without_badge)
    assert only_removed.label == "flagstaff: premiumBadge removed"


def test_a_new_default_value_is_named_in_the_label():
    document = edited(premiumBadge={"t": 0, "v": {"b": True}, "i": "b0a1b2c3"})
    change = describe_change(config_of(ONBOARDING), config_of(document))
    assert change.label == "flagstaff: premiumBadge → true"
    assert change.details == f"premiumBadge: {BADGE} → true"


def test_new_variation_ids_alone_serve_nothing_new():
    document = copy.deepcopy(ONBOARDING)
    for option in document["f"]["onboardingFeature"]["r"][0]["p"]:
        option["i"] = option["i"][::-1]
    document["f"]["premiumBadge"]["i"] = "another1"
    assert not describe_change(config_of(ONBOARDING), config_of(document))


def test_a_changed_segment_changes_the_flags_that_use_it():
    document = copy.deepcopy(ONBOARDING)
    document["s"][0]["r"][0]["l"] = ["free", "trial"]
    change = describe_change(config_of(ONBOARDING), config_of(document))
    assert change.keys == ("onboardingFeature",)
    (flag,) = change.flags
    # The summary names the segment only: it says why the flag changed.
    assert flag.before == SPLIT
    assert flag.after == f"{SPLIT} (segment Free plan changed)"


def test_a_renamed_segment_shows_in_the_summary():
    document = copy.deepcopy(ONBOARDING)
    document["s"][0]["n"] = "Starter plan"
    (flag,) = describe_change(config_of(ONBOARDING), config_of(document)).flags
    assert flag.after.startswith("Starter plan: default 25%")


def test_a_new_salt_changes_only_the_flags_that_compare_hashed_values():
    hashed = copy.deepcopy(ONBOARDING)
    badge_rule = hashed["f"]["premiumBadge"]["r"][0]
    badge_rule["c"] = [{"u": {"a": "Email", "c": 16, "l": ["0f" * 32]}}]
    resalted = copy.deepcopy(hashed)
    resalted["p"]["s"] = "YW5vdGhlciBzYWx0"

    change = describe_change(config_of(hashed), config_of(resalted))
    assert change.keys == ("premiumBadge",)
    summary = "Email IS ONE OF (hashed) 1 value: true; otherwise false"
    assert change.flags[0] == FlagChange("premiumBadge", summary,
                                         f"{summary} (salt changed)")
    assert "0f0f" not in change.details


def test_conditions_of_every_kind_are_summarized():
    document = edited(gate={
        "t": 1,
        "a": "Country",
        "r": [
            {"c": [{"p": {"f": "premiumBadge", "c": 0, "v": {"b": True}}},
                   {"s": {"s": 0, "c": 1}}],
             "s": {"v": {"s": "badge"}, "i": "g1"}},
            {"c": [{"u": {"a": "age", "c": 14, "d": 17.0}},
                   {"u": {"a": "Email", "c": 2, "l": ["@a.com", "@b.com", "@c.com",
                                                      "@d.com", "@e.com"]}}],
             "s": {"v": {"s": ""}, "i": "g2"}},
            {"c": [{"s": {"s": 7, "c": 0}}], "s": {"v": {"s": "lost"}, "i": "g3"}},
        ],
        "p": [{"p": 50, "v": {"s": "a"}, "i": "g4"},
              {"p": 50, "v": {"s": "b"}, "i": "g5"}],
        "v": {"s": "z"},
        "i": "g6",
    })
    (flag,) = describe_change(config_of(ONBOARDING), config_of(document)).flags
    assert flag.after == (
        "flag premiumBadge is true AND not in Free plan: badge; "
        "age > (number) 17 AND "
        'Email CONTAINS ANY OF @a.com, @b.com, @c.com, … (+2): ""; '
        "segment #7: lost; otherwise by Country a 50% / b 50%"
    )


def test_long_values_and_many_flags_are_cut_short():
    long_text = "x" * 5000
    document = edited(premiumBadge={
        "t": 1,
        "r": [{"c": [{"u": {"a": "Email", "c": 0, "l": [f"user{n}@example.com"
                                                          for n in range(500)]}}],
               "s": {"v": {"s": long_text}, "i": "l1"}}],
        "v": {"s": long_text},
        "i": "l2",
    })
    (flag,) = describe_change(config_of(ONBOARDING), config_of(document)).flags
    assert len(flag.after) <= MAX_SUMMARY
    assert "… (+497)" in flag.after and "xxx…" in flag.after
    assert long_text not in flag.after

    many = {"p": {"s": "c2FsdA=="},
            "f": {f"flag{n:03}": {"t": 1, "v": {"s": long_text}} for n in range(300)}}
    change = describe_change(None, config_of(many))
    assert len(change) == 300
    assert len(change.label) <= MAX_LABEL
    assert change.label.startswith("flagstaff: 300 flags changed (flag000, flag001,")
    lines = change.details.splitlines()
    assert len(lines) == 51 and lines[-1] == "… and 250 more flags"
    assert all(len(line) <= MAX_SUMMARY + 20 for line in lines)


def test_a_setting_that_does_not_decode_is_told_as_invalid():
    old = decode_config(json.dumps(ONBOARDING))
    broken = copy.deepcopy(ONBOARDING)
    broken["f"]["premiumBadge"]["t"] = "bool"
    change = describe_change(old, decode_config(json.dumps(broken)))
    (flag,) = change.flags
    assert flag.key == "premiumBadge"
    assert flag.after.startswith("(invalid: ") and "$.f['premiumBadge']" in flag.after
    assert not describe_change(decode_config(json.dumps(broken)),
                               decode_config(json.dumps(broken)))


def test_a_change_is_a_frozen_value():
    change = describe_change(None, config_of(ONBOARDING))
    with pytest.raises(AttributeError):
        change.flags = ()  # type: ignore[misc]
    assert isinstance(change, ConfigChange)
    assert change == describe_change(None, config_of(ONBOARDING))


# -- ConfigCat's own configs --------------------------------------------------


def shared_configs() -> list[Path]:
    folder = path("configs_v6")
    by_key = folder / "go-sdk-content-by-key"
    return sorted(folder.glob("*.json")) + sorted(by_key.glob("*.json"))


CONFIGS = [file for file in shared_configs() if file.name != "index.json"]


@pytest.mark.parametrize("file", CONFIGS, ids=[file.stem[-24:] for file in CONFIGS])
def test_configcat_configs_are_described_within_bounds(file):
    raw = file.read_bytes()
    model = decode_config(raw)

    added = describe_change(None, model, name="...abcdef")
    assert added.keys == tuple(model.settings)
    assert len(added.label) <= MAX_LABEL and "\n" not in added.label
    for flag in added.flags:
        assert flag.before is None
        assert flag.after and len(flag.after) <= MAX_SUMMARY and "\n" not in flag.after
    assert not describe_change(model, decode_config(raw))

    removed = describe_change(model, decode_config(b'{"f": {}}'))
    assert removed.keys == tuple(model.settings)
    assert all(flag.after is None for flag in removed.flags)


def test_configcat_configs_described_against_each_other():
    models = [decode_config(file.read_bytes()) for file in CONFIGS]
    assert len(models) >= 10
    for old, new in zip(models, models[1:]):
        change = describe_change(old, new)
        keys = set(change.keys)
        assert keys <= set(old.settings) | set(new.settings)
        # Every flag that only one of them has is in the change.
        assert set(old.settings) ^ set(new.settings) <= keys
        assert len(change.label) <= MAX_LABEL
