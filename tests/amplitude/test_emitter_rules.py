"""
The emitter's rules on their own: the dedup cache, the verdict on each
answer, variants, insert ids and identify operations.
"""

import hashlib
import json

import pytest

import flagstaff.amplitude
from flagstaff.amplitude import DropReason, ExpiringLRU
from flagstaff.amplitude._events import (
    deterministic_insert_id,
    identify_operations,
    truncate_strings,
    variant_of,
)
from flagstaff.amplitude._responses import Action, judge

pytestmark = pytest.mark.timeout(30)

KEY = "secret-api-key-0123456789"
IDS = [("user-00001", None), ("user-00002", "device-2"), (None, "device-3")]


def body(**fields):
    return json.dumps(fields).encode()


def test_the_package_exports_what_it_documents():
    public = {name for name in dir(flagstaff.amplitude) if not name.startswith("_")}
    assert set(flagstaff.amplitude.__all__) == public
    assert list(flagstaff.amplitude.__all__) == sorted(flagstaff.amplitude.__all__)


def test_the_emitter_knows_no_config_client_or_core():
    import ast
    from pathlib import Path

    package = Path(flagstaff.amplitude.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert not module.lstrip(".").startswith(("config", "client", "core")), source
                assert "flagstaff.c" not in module, source


def test_dedup_is_bounded_and_expires_absolutely():
    cache = ExpiringLRU(capacity=2, ttl=10)
    assert cache.admit("a", 0) and not cache.admit("a", 9)
    assert cache.admit("a", 10)                 # seen at 9 does not extend it
    assert cache.admit("b", 11) and cache.admit("c", 11)
    assert len(cache) == 2 and cache.admit("a", 12)   # "a" was the oldest
    assert cache.changed("u", "v1", 0) and not cache.changed("u", "v1", 1)
    assert cache.changed("u", "v2", 2) and cache.changed("u", "v1", 3)
    cache.forget("u")
    assert cache.changed("u", "v1", 4)
    with pytest.raises(ValueError):
        ExpiringLRU(capacity=0)


@pytest.mark.parametrize(
    "status, content, action, reason",
    [
        (200, b"", Action.DELIVERED, None),
        (200, b"<html>", Action.DELIVERED, None),
        (204, b"", Action.DELIVERED, None),
        (None, b"", Action.RETRY, None),
        (408, b"", Action.RETRY, None),
        (500, body(code=500), Action.RETRY, None),
        (502, b"<html>bad gateway</html>", Action.RETRY, None),
        (503, b"", Action.RETRY, None),
        (599, b"", Action.RETRY, None),
        (413, body(code=413), Action.SPLIT, None),
        (403, body(code=403, error="Forbidden"), Action.DROP, DropReason.FORBIDDEN),
        (401, b"", Action.DROP, DropReason.HTTP_ERROR),
        (404, b"", Action.DROP, DropReason.HTTP_ERROR),
        (302, b"", Action.DROP, DropReason.HTTP_ERROR),
        (400, b"<html>", Action.DROP, DropReason.BAD_REQUEST),
        (400, body(code=400, error="Invalid JSON request body"), Action.DROP,
         DropReason.BAD_REQUEST),
        (400, body(code=400, error="Request missing required field", missing_field="events"),
         Action.DROP, DropReason.BAD_REQUEST),
        (400, body(code=400, error=f"Invalid API key: {KEY}"), Action.FATAL,
         DropReason.INVALID_API_KEY),
    ],
)
def test_the_verdict_on_each_status(status, content, action, reason):
    verdict = judge(status, content, IDS, KEY)
    assert (verdict.action, verdict.reason) == (action, reason)
    assert KEY not in verdict.detail


def test_a_single_event_413_is_dropped():
    verdict = judge(413, b"", IDS[:1], KEY)
    assert (verdict.action, verdict.reason) == (Action.DROP, DropReason.TOO_LARGE)


def test_a_partial_400_names_indexes_and_ignores_nonsense():
    content = body(
        code=400, error="Invalid field values on some events",
        events_with_invalid_fields={"time": [0, 7, "x", -1]},
        events_with_missing_fields={"event_type": [2]},
        events_with_invalid_id_lengths="not a map",
    )
    verdict = judge(400, content, IDS, KEY)
    assert verdict.action is Action.SORT
    assert verdict.dropped == {0: DropReason.REJECTED, 2: DropReason.REJECTED}
    silenced = body(code=400, error="Events silenced for device_id",
                    silenced_events=[1], throttled_events=[2])
    verdict = judge(400, silenced, IDS, KEY)
    assert verdict.dropped == {1: DropReason.REJECTED}
    assert verdict.held == {2} and verdict.throttled_ids == {("d", "device-3")}


def test_a_429_sorts_held_quota_and_free():
    content = body(
        code=429, throttled_users={"user-00002": 31}, throttled_devices={},
        throttled_events=[1, 2], exceeded_daily_quota_users={},
        exceeded_daily_quota_devices={"device-3": 500_001},
    )
    verdict = judge(429, content, IDS, KEY)
    assert verdict.held == {1}
    assert verdict.dropped == {2: DropReason.DAILY_QUOTA}
    assert verdict.throttled_ids == {("u", "user-00002")}
    assert verdict.quota_ids == {("d", "device-3")}
    anonymous = judge(429, b"Too Many Requests", IDS, KEY)
    assert anonymous.held == {0, 1, 2} and not anonymous.dropped


@pytest.mark.parametrize(
    "value, variation_id, variant",
    [
        (True, "v", "true"), (False, None, "false"), (3, None, "3"), (1.5, None, "1.5"),
        ("feature2", "v", "feature2"), ("x" * 200, "v-long", "v-long"),
        ("x" * 200, None, "x" * 200), (None, "v", "v"), (None, None, None),
    ],
)
def test_variants(value, variation_id, variant):
    assert variant_of(value, variation_id) == variant


def test_the_insert_id_scheme_never_changes():
    canonical = "$exposure user-42 None onboardingFeature feature2 None"
    digest = hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
    assert deterministic_insert_id("x", canonical, 19_700) == f"x-19700-{digest}"
    assert len(deterministic_insert_id("a", "\udcff surrogate", 1)) == 2 + 2 + 32


def test_identify_operations():
    ops = identify_operations({"plan": "free"}, {"set_once": {"a": 1}}, ["gone"])
    assert ops == {"$set": {"plan": "free"}, "$setOnce": {"a": 1}, "$unset": {"gone": "-"}}
    assert identify_operations(None, {}, "one") == {"$unset": {"one": "-"}}
    with pytest.raises(ValueError, match="two operations"):
        identify_operations({"a": 1}, {"add": {"a": 2}}, None)
    with pytest.raises(ValueError, match="without"):
        identify_operations({}, {}, None)
    with pytest.raises(TypeError):
        identify_operations(["a"], {}, None)


def test_truncation_reaches_every_string():
    cut = truncate_strings({"a": ["x" * 2000, {"b": "y" * 1500}], "n": 1})
    assert len(cut["a"][0]) == 1024 and len(cut["a"][1]["b"]) == 1024 and cut["n"] == 1
