"""
Whether the demo's readout tells the truth of its hidden model: over many
seeds it names the true best variant in most, and under a model where every
variant converts alike it names a winner no more often than its family-wise
error rate allows. These run the demo's statistics without its servers
(test_demo.py checks that the servers' path gives the same readout).
"""

from __future__ import annotations

import json

import pytest
from scipy import stats

from flagstaff.demo._world import (
    CONTROL,
    FLAG_KEY,
    TREATMENTS,
    HiddenModel,
    example_config,
    rolled_out,
    simulated_readout,
    split_of,
    visitors,
)
from flagstaff import Config

ALPHA = 0.05


def test_the_readout_names_the_true_best_variant_in_most_seeds():
    seeds = range(1, 21)
    right = [simulated_readout(seed, 20_000) for seed in seeds]
    named = sum(readout.winner == model.best for model, readout in right)
    assert named >= 15, f"the true best was named in {named} of 20 seeds"


def test_a_null_model_names_a_winner_no_more_often_than_alpha_allows():
    seeds = range(1, 61)
    false_winners = sum(
        simulated_readout(seed, 20_000, null=True)[1].winner is not None
        for seed in seeds
    )
    # Holm keeps the chance of any false winner at most ALPHA per seed; more
    # false winners than this happen with probability under 1 % even then.
    allowed = stats.binom.ppf(0.99, len(seeds), ALPHA)
    assert false_winners <= allowed, (false_winners, allowed)


def test_too_few_users_are_not_conclusive():
    model, readout = simulated_readout(3, 4_000)
    assert not readout.conclusive
    assert readout.winner is None
    assert "not conclusive" in readout.status


def test_models_are_drawn_from_their_seed():
    assert HiddenModel.draw(7) == HiddenModel.draw(7)
    assert HiddenModel.draw(7) != HiddenModel.draw(8)
    null = HiddenModel.draw(7, null=True)
    assert len(set(null.rates.values())) == 1
    assert null.best is None
    model = HiddenModel.draw(7)
    assert model.best in TREATMENTS
    assert model.rates[model.best] - model.rates[CONTROL] >= 0.025


def test_premium_visitors_never_convert():
    model = HiddenModel.draw(1)
    premium = [v for v in visitors(1, 2_000) if v.plan == "premium"]
    assert premium
    assert not any(v.converts(model, variant)
                   for v in premium for variant in TREATMENTS)


def test_the_visitors_mix_the_plans_as_asked():
    plans = [v.plan for v in visitors(2, 10_000, premium_share=0.3)]
    assert 0.27 < plans.count("premium") / len(plans) < 0.33
    assert {v.pages for v in visitors(2, 1_000)} == {1, 2, 3}


def test_the_split_and_the_rollout_read_the_config():
    raw = example_config()
    assert split_of(raw) == {"default": 25, "feature1": 25, "feature2": 25,
                             "feature3": 25}
    config = Config.from_json(rolled_out(raw, "feature2"))
    free = [v.user for v in visitors(4, 500) if v.plan == "free"]
    premium = [v.user for v in visitors(4, 500) if v.plan == "premium"]
    assert {config.get_value(FLAG_KEY, None, user) for user in free} == {"feature2"}
    assert {config.get_value(FLAG_KEY, None, user) for user in premium} == {"default"}
    before = Config.from_json(raw).get_value_details(FLAG_KEY, None, free[0])
    after = config.get_value_details(FLAG_KEY, None, free[0])
    if before.value == "feature2":
        assert after.variation_id == before.variation_id
    with pytest.raises(ValueError, match="feature9"):
        rolled_out(raw, "feature9")
    assert json.loads(rolled_out(raw, "feature1"))["f"]["premiumBadge"] == \
        json.loads(raw)["f"]["premiumBadge"]
