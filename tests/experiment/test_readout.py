"""
The experiment readout, checked by simulation: intervals that cover, a
sample-ratio check that fires only on skew, Holm keeping family-wise false
positives at alpha, a true best variant found, a horizon honoured, and an
assignment audit that finds exactly the planted wrong variants.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flagstaff
from flagstaff.batch import evaluate_table
from flagstaff.experiment import (
    audit_assignments,
    holm,
    readout,
    readout_from_counts,
    users_per_variant,
    wilson_interval,
)

VARIANTS = ("default", "feature1", "feature2", "feature3")


def _simulate(rng, rates, n):
    return {v: (n, int(rng.binomial(n, p))) for v, p in rates.items()}


def _events(seed, rates, n):
    """A log of exposures and conversions: pairs, converted ids and a table."""
    rng = random.Random(seed)
    pairs, converted, rows = [], set(), []
    for i in range(n * len(rates)):
        user, variant = f"u{i}", rng.choice(sorted(rates))
        pairs.append((user, variant))
        rows.append((user, variant, "$exposure"))
        if rng.random() < rates[variant]:
            converted.add(user)
            rows.append((user, None, "Subscribed to Premium"))
    users, variants, events = zip(*rows)
    table = pa.table({"user_id": list(users), "variant": list(variants),
                      "event": list(events)})
    return pairs, converted, table


def test_wilson_intervals_cover_the_true_rate_about_95_percent():
    rng = np.random.default_rng(7)
    rate, n, trials = 0.08, 600, 400
    hits = 0
    for k in rng.binomial(n, rate, size=trials):
        low, high = wilson_interval(int(k), n)
        hits += low <= rate <= high
    assert 0.92 <= hits / trials <= 0.98


def test_difference_intervals_cover_the_true_difference_about_95_percent():
    rng = np.random.default_rng(11)
    trials, hits = 400, 0
    for _ in range(trials):
        counts = _simulate(rng, {"default": 0.10, "feature1": 0.13}, 800)
        c = readout_from_counts(counts).comparison("feature1")
        hits += c.low <= 0.03 <= c.high
    assert 0.92 <= hits / trials <= 0.98


def test_the_sample_ratio_check_fires_on_a_skewed_log():
    skewed = readout_from_counts({"default": (12_000, 1200), "feature1": (8_000, 800)})
    assert skewed.sample_ratio.flagged
    assert skewed.winner is None
    assert skewed.status.startswith("sample ratio mismatch")


def test_the_sample_ratio_check_stays_quiet_on_a_fair_log():
    rng = np.random.default_rng(3)
    for _ in range(50):
        assigned = rng.multinomial(20_000, [0.25] * 4)
        counts = {v: (int(n), int(n) // 10) for v, n in zip(VARIANTS, assigned)}
        assert not readout_from_counts(counts).sample_ratio.flagged


def test_the_sample_ratio_check_follows_the_configured_weights():
    counts = {"default": (12_000, 1200), "feature1": (8_000, 800)}
    planned = readout_from_counts(counts, weights={"default": 60, "feature1": 40})
    assert not planned.sample_ratio.flagged
    missing = readout_from_counts(counts, weights={"default": 1, "feature1": 1,
                                                   "feature2": 1})
    assert missing.variant("feature2").exposed == 0
    assert missing.sample_ratio.flagged


def test_holm_keeps_family_wise_false_positives_near_alpha():
    rng = np.random.default_rng(2024)
    alpha, trials, false_positives = 0.05, 1000, 0
    rates = dict.fromkeys(VARIANTS, 0.10)
    for _ in range(trials):
        result = readout_from_counts(_simulate(rng, rates, 2000), alpha=alpha)
        false_positives += any(c.significant for c in result.comparisons)
        assert result.winner is None or result.winner != "default"
    assert false_positives / trials <= alpha + 0.02


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx((0.03, 0.06, 0.06))
    assert holm([0.5, 0.9]) == (1.0, 1.0)


def test_the_true_best_variant_wins_in_most_seeds():
    rates = {"default": 0.10, "feature1": 0.11, "feature2": 0.105,
             "feature3": 0.14}
    n = users_per_variant(0.10, 0.03)
    wins = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        result = readout_from_counts(_simulate(rng, rates, n), baseline=0.10,
                                     minimum_detectable_effect=0.03)
        assert result.conclusive
        assert result.winner in (None, "feature3", "feature1")
        wins += result.winner == "feature3"
    assert wins >= 15


def test_not_conclusive_yet_before_the_horizon():
    counts = {"default": (500, 50), "feature1": (500, 120)}
    early = readout_from_counts(counts, baseline=0.10,
                                minimum_detectable_effect=0.02)
    assert early.comparison("feature1").significant
    assert not early.conclusive and early.winner is None
    assert early.status.startswith("not conclusive yet")
    assert "not conclusive yet" in str(early)
    assert readout_from_counts(counts, horizon=500).winner == "feature1"


def test_a_negative_significant_difference_never_wins():
    result = readout_from_counts({"default": (5000, 750), "feature1": (5000, 400)},
                                 horizon=1000)
    assert result.comparison("feature1").significant
    assert result.winner is None
    assert result.status.startswith("no treatment beats default")


def test_users_per_variant_matches_the_textbook_formula():
    # Fleiss' formula without continuity correction: 3,841 for 10 % -> 12 %.
    assert users_per_variant(0.10, 0.02, comparisons=1) == 3841
    assert users_per_variant(0.10, 0.02) > users_per_variant(0.10, 0.02,
                                                             comparisons=1)
    with pytest.raises(ValueError, match="baseline"):
        users_per_variant(1.5, 0.02)
    with pytest.raises(ValueError, match="minimum_detectable_effect"):
        users_per_variant(0.5, 0.6)


def test_tables_files_and_iterables_read_alike(tmp_path):
    rates = dict(zip(VARIANTS, (0.10, 0.12, 0.09, 0.15)))
    pairs, converted, table = _events(5, rates, 300)
    expected = readout(pairs, converted)
    pq.write_table(table, tmp_path / "events.parquet")
    import pyarrow.csv as pcsv

    pcsv.write_csv(table, tmp_path / "events.csv")
    for source in (table, tmp_path / "events.parquet", str(tmp_path / "events.csv")):
        assert readout(source) == expected
    assert sum(v.exposed for v in expected.variants) == 1200
    assert expected.variant("feature3").conversions == sum(
        1 for user, v in pairs if v == "feature3" and user in converted)


def test_configurable_columns_and_event_names():
    table = pa.table({"uid": ["a", "b", "b", "c"],
                      "arm": ["default", "x", None, "x"],
                      "name": ["seen", "seen", "bought", "seen"]})
    result = readout(table, control="default", user_column="uid",
                     variant_column="arm", event_column="name",
                     exposure_event="seen", conversion_event="bought")
    assert [(v.variant, v.exposed, v.conversions) for v in result.variants] == [
        ("default", 1, 0), ("x", 2, 1)]


def test_the_text_table_names_every_variant_and_the_checks():
    rng = np.random.default_rng(1)
    result = readout_from_counts(_simulate(rng, dict.fromkeys(VARIANTS, 0.1), 4000),
                                 horizon=3000)
    text = str(result)
    for variant in VARIANTS:
        assert variant in text
    assert "(control)" in text and "sample ratio" in text and "verdict:" in text
    assert "horizon: 3,000 users per variant" in text


def test_importing_flagstaff_does_not_import_scipy():
    code = ("import sys, flagstaff, flagstaff.experiment; "
            "assert 'scipy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_missing_scipy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(ImportError, match=r"flagstaff\[experiment\]"):
        wilson_interval(1, 10)


@pytest.fixture(scope="module")
def onboarding():
    path = Path(flagstaff.__file__).parent / "examples" / "onboarding.json"
    raw = path.read_bytes()
    return flagstaff.Config.from_json(raw)


def test_the_audit_finds_planted_wrong_variants_and_no_others(onboarding):
    rng = random.Random(9)
    ids = [f"user-{i}" for i in range(3000)]
    plans = [rng.choice(["free", "free", "premium"]) for _ in ids]
    users = pa.table({"Identifier": ids, "plan": plans})
    served = evaluate_table(onboarding, users, ["onboardingFeature"])
    truth = dict(zip(ids, served.column("onboardingFeature").to_pylist()))

    planted = set(rng.sample(ids, 17))
    rows = []
    for user in ids:
        variant = truth[user]
        if user in planted:
            variant = rng.choice([v for v in VARIANTS if v != variant])
        rows.append((user, variant, "$exposure"))
        rows.append((user, truth[user], "$exposure"))  # a second, correct one
        rows.append((user, None, "Subscribed to Premium"))
    rows.append(("stranger", "feature1", "$exposure"))
    user_ids, variants, events = zip(*rows)
    log = pa.table({"user_id": list(user_ids), "variant": list(variants),
                    "event": list(events)})

    audit = audit_assignments(onboarding, log, users, "onboardingFeature",
                              examples=100)
    assert audit.checked == 3000 and audit.unknown_users == 1
    assert audit.disagreeing == 17 and not audit.ok
    assert {d.user_id for d in audit.examples} == planted
    assert all(d.expected == truth[d.user_id] != d.recorded for d in audit.examples)
    assert "17 recorded with a variant" in str(audit)

    honest = [(user, truth[user]) for user in ids]
    assert audit_assignments(onboarding, honest, users, "onboardingFeature").ok
