"""
flagstaff.testing: the config builder evaluates as it reads, the memory sink
records what a client reports, and the pytest plugin's fixtures work in a
test run of their own (pytester).
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import metadata

import pytest
import tomllib

import flagstaff.testing
from configcat_data import REPO
from flagstaff import Client, ErrorCode, FlagOverrides, User
from flagstaff.testing import ConfigBuilder, MemorySink, sdk_key_for, when

pytest_plugins = ["pytester"]

ONBOARDING_SPLIT = {"default": 25, "feature1": 25, "feature2": 25, "feature3": 25}
ACME = when("Email").ends_with_any_of("@acme.test")


def onboarding() -> ConfigBuilder:
    return (
        ConfigBuilder(salt="test-salt")
        .flag(
            "onboardingFeature",
            "default",
            rules=[
                when("plan").is_one_of("premium").serve("default"),
                when("plan").is_one_of("free").split(ONBOARDING_SPLIT),
            ],
        )
        .flag("beta", False, rules=[ACME.serve(True)])
    )


# -- the builder -------------------------------------------------------------


def test_builder_writes_config_v6_short_keys():
    document = json.loads(onboarding().to_json())

    assert document["p"]["s"] == "test-salt"
    flag = document["f"]["onboardingFeature"]
    assert flag["t"] == 1 and flag["v"] == {"s": "default"}
    premium, free = flag["r"]
    assert premium["c"] == [{"u": {"a": "plan", "c": 0, "l": ["premium"]}}]
    assert premium["s"]["v"] == {"s": "default"}
    assert [(o["p"], o["v"]) for o in free["p"]] == [
        (25, {"s": value}) for value in ONBOARDING_SPLIT
    ]
    assert document["f"]["beta"]["r"][0]["c"][0]["u"] == {
        "a": "Email", "c": 32, "l": ["@acme.test"]
    }


def test_percentage_split_gives_each_variant_its_share():
    config = onboarding().to_config()

    users = [User(f"u{n}", custom={"plan": "free"}) for n in range(4000)]

    served = Counter(config.get_value("onboardingFeature", "?", u) for u in users)

    assert set(served) == set(ONBOARDING_SPLIT)
    # 1,000 expected each; 4 standard deviations (about 27 each) either side.
    assert all(890 <= count <= 1110 for count in served.values()), served


def test_rules_and_fallthrough_evaluate_as_written():
    config = onboarding().to_config()
    premium = User("p1", custom={"plan": "premium"})

    details = config.get_value_details("onboardingFeature", "?", premium)
    assert (details.value, details.error_code) == ("default", ErrorCode.NONE)
    assert (details.matched_rule, details.matched_option) == (0, None)
    free_user = User("f", custom={"plan": "free"})
    free = config.get_value_details("onboardingFeature", "?", free_user)
    assert (free.matched_rule, free.matched_option is not None) == (1, True)
    assert config.get_value("onboardingFeature", "?", User("x")) == "default"
    assert config.get_value("beta", None, User("b", email="b@acme.test")) is True
    assert config.get_value("beta", None, User("c", email="c@other.test")) is False


def test_typed_flags_conditions_and_flag_level_split():
    adult_dutch = when("age").at_least(18) & when("Country").equals("NL")
    new_app = when("version").version_at_least("2.0.0")
    builder = (
        ConfigBuilder()
        .flag("limit", 10, rules=[adult_dutch.serve(20)])
        .flag("ratio", 0.5, split={0.25: 50, 1: 50}, attribute="team")
        .flag("tier", "basic", rules=[new_app.serve("new")])
    )
    config = builder.to_config()
    document = builder.to_dict()

    assert [document["f"][key]["t"] for key in ("limit", "ratio", "tier")] == [2, 3, 1]
    assert document["f"]["ratio"]["p"][1]["v"] == {"d": 1.0}
    dutch, german = (User("a", country=c, custom={"age": 30}) for c in ("NL", "DE"))
    assert config.get_value("limit", 0, dutch) == 20
    assert config.get_value("limit", 0, german) == 10
    teams = [User(f"{n}", custom={"team": f"t{n}"}) for n in range(100)]
    ratios = {config.get_value("ratio", 0.0, user) for user in teams}
    assert ratios == {0.25, 1.0}
    newer, older = (User("v", custom={"version": v}) for v in ("2.1.0", "1.9.9"))
    assert config.get_value("tier", "", newer) == "new"
    assert config.get_value("tier", "", older) == "basic"


def test_builder_refuses_what_configcat_would_not_serve():
    with pytest.raises(ValueError, match="add up to 90"):
        ConfigBuilder().flag("f", "a", split={"a": 40, "b": 50})
    with pytest.raises(TypeError, match="does not fit"):
        ConfigBuilder().flag("f", True, rules=[when("x").equals("y").serve("yes")])


def test_sdk_key_for_is_stable_and_in_configcat_format():
    key = sdk_key_for("checkout")

    assert key == sdk_key_for("checkout") != sdk_key_for("other")
    assert [len(part) for part in key.split("/")] == [15, 22, 22]
    Client(key)  # the client accepts it without a base URL


# -- the memory sink ---------------------------------------------------------


def test_sink_keeps_exposures_and_skips_defaults_like_the_emitter():
    config = onboarding().to_config()
    sink = MemorySink()

    premium = User("p", custom={"plan": "premium"})
    sink.exposure(config.get_value_details("onboardingFeature", "?", premium))
    sink.exposure(config.get_value_details("missing", "?", User("p")))
    sink.exposure(config.get_value_details("beta", False))
    sink.track("Subscribed to Premium", user_id="p", event_properties={"plan": "free"})
    sink.identify("p", {"plan": "premium"})

    [exposure] = sink.exposures
    assert (exposure.flag_key, exposure.variant, exposure.user_id) == (
        "onboardingFeature", "default", "p"
    )
    assert sink.skipped == 2
    [conversion] = sink.events("Subscribed to Premium")
    assert (conversion.user_id, conversion.event_properties) == ("p", {"plan": "free"})
    [identify] = sink.identifies
    assert (identify.user_id, identify.properties) == ("p", {"plan": "premium"})


@pytest.mark.anyio
async def test_sink_records_a_clients_exposures_and_assignments(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(onboarding().to_json(), encoding="utf-8")
    overrides = FlagOverrides(str(path))
    sink, assignments = MemorySink(), MemorySink()
    users = [User(f"u{n}", custom={"plan": "free"}) for n in range(20)]

    served = {}
    async with Client("local", overrides=overrides, emitter=sink) as client:
        for user in users:
            value = await client.get_value("onboardingFeature", "?", user)
            served[user.identifier] = value
    events = "assignments"
    async with Client(
        "local", overrides=overrides, emitter=assignments, evaluation_events=events
    ) as client:
        await client.get_all_values(User("b", email="b@acme.test"))

    assert sink.variants_of("onboardingFeature") == served
    assert assignments.assignments == [{"onboardingFeature": "default", "beta": "true"}]


# -- the plugin --------------------------------------------------------------


def test_plugin_is_opt_in_not_an_entry_point():
    # An entry-point plugin would have pytest rewrite the asserts of all of
    # flagstaff in every test session of every user; a conftest line loads it
    # where it is wanted instead.
    with open(REPO / "pyproject.toml", "rb") as file:
        project = tomllib.load(file)["project"]
    assert "pytest11" not in project.get("entry-points", {})


def test_plugin_starts_nothing_at_import():
    assert "uvicorn" not in vars(flagstaff.testing)
    fixtures = [
        getattr(flagstaff.testing, name)
        for name in ("flagstaff_cdn", "flagstaff_events", "flagstaff_client_factory")
    ]
    markers = [f._fixture_function_marker for f in fixtures]
    assert not any(marker.autouse for marker in markers)


# How an application's tests load the plugin.
PLUGIN_CONFTEST = """
pytest_plugins = ["flagstaff.testing"]
"""

PLUGIN_USER = """
import pytest

from flagstaff import User
from flagstaff.testing import ConfigBuilder, sdk_key_for, when

pytestmark = pytest.mark.anyio

KEY = sdk_key_for("app")
SPLIT = {"default": 25, "feature1": 25, "feature2": 25, "feature3": 25}
CONFIG = ConfigBuilder().flag(
    "onboardingFeature", "default",
    rules=[when("plan").is_one_of("free").split(SPLIT)],
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


async def test_client_reads_the_published_config(
    flagstaff_client_factory, flagstaff_events, flagstaff_cdn
):
    users = [User(f"u{n}", custom={"plan": "free"}) for n in range(40)]
    factory = flagstaff_client_factory
    async with factory(KEY, CONFIG, emitter=flagstaff_events) as client:
        served = [await client.get_value("onboardingFeature", "?", u) for u in users]

    assert set(served) == set(SPLIT)
    assert [e.variant for e in flagstaff_events.exposures] == served
    assert flagstaff_cdn.requests_for(KEY) == 1
    assert flagstaff_cdn.url.startswith("http://127.0.0.1:")


async def test_each_test_starts_with_an_empty_cdn(flagstaff_cdn, flagstaff_events):
    from flagstaff import Client, ManualPoll

    assert flagstaff_cdn.requests_for(KEY) == 0
    assert flagstaff_events.exposures == []
    flagstaff_cdn.publish(KEY, CONFIG.to_dict())
    client = Client(KEY, polling=ManualPoll(), base_url=flagstaff_cdn.url)
    async with client:
        assert (await client.refresh()).is_success
        assert (await client.refresh()).is_success  # answered 304
        flagstaff_cdn.unpublish(KEY)
        assert not (await client.refresh()).is_success
        assert await client.get_value("onboardingFeature", "?", User("x")) == "default"
"""


def test_plugin_fixtures_in_a_test_run_of_their_own(pytester):
    pytester.makeini("[pytest]\nfilterwarnings = error\naddopts = --strict-markers\n")
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(test_user=PLUGIN_USER)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")

    result.assert_outcomes(passed=4)


def test_a_missing_uvicorn_is_named(pytester):
    hide_uvicorn = "\nimport sys\nsys.modules['uvicorn'] = None\n"
    pytester.makeconftest(PLUGIN_CONFTEST + hide_uvicorn)
    pytester.makepyfile(test_user="def test_cdn(flagstaff_cdn):\n    pass\n")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*uvicorn, which is not installed*"])


def test_plugin_leaves_tests_that_use_none_of_it_alone(pytester):
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(
        test_plain="""
        import sys

        def test_plain():
            assert "uvicorn" not in sys.modules
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_sink_reads_the_experiment_it_recorded():
    config = onboarding().to_config()
    sink = MemorySink()
    served = {}
    for n in range(400):
        user = User(f"user-{n}", custom={"plan": "free" if n % 5 else "premium"})
        details = config.get_value_details("onboardingFeature", "?", user)
        sink.exposure(details)
        served[user.identifier] = (details.value, n % 3 == 0)
        if n % 3 == 0:
            sink.track("Subscribed to Premium", user=user)

    result = sink.readout("onboardingFeature")

    expected = Counter(value for value, _ in served.values())
    converted = Counter(value for value, won in served.values() if won)
    counts = {v.variant: (v.exposed, v.conversions) for v in result.variants}
    assert counts == {v: (expected[v], converted[v]) for v in expected}
    assert set(counts) == set(ONBOARDING_SPLIT)
