"""
The demo's world: who visits (free and premium users), how often, and the
conversion rate of each onboarding variant, which the simulation knows and
the readout has to find out.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Optional

from ..core import Config, User
from ..experiment import Readout, readout

__all__ = (
    "CONTROL",
    "CONVERSION_EVENT",
    "FLAG_KEY",
    "PLAN",
    "SEGMENT",
    "TREATMENTS",
    "VARIANTS",
    "HiddenModel",
    "Visitor",
    "example_config",
    "rolled_out",
    "simulated_readout",
    "split_of",
    "visitors",
)

FLAG_KEY = "onboardingFeature"
CONTROL = "default"
TREATMENTS = ("feature1", "feature2", "feature3")
VARIANTS = (CONTROL, *TREATMENTS)
CONVERSION_EVENT = "Subscribed to Premium"
#: the user property the experiment is read on, and its value
SEGMENT = ("plan", "free")
#: the plan fixed before the experiment starts: a control rate of 8 % and a
#: lift of 3 points worth finding, with 80 % power
PLAN = {"baseline": 0.08, "minimum_detectable_effect": 0.03, "power": 0.8}


@dataclass(frozen=True)
class HiddenModel:
    """
    The conversion rate of free users per variant, which only the
    simulation knows. Premium users have subscribed already and never
    convert.
    """

    rates: Mapping[str, float]

    @classmethod
    def draw(cls, seed: int, *, null: bool = False) -> HiddenModel:
        """
        Draws a model from `seed`: a control rate between 6 and 10 %, and
        for the three treatments, in a random order, one lift of 2.5 to 4.5
        points, one of 0 to 1 point and one loss of up to 1.5 points. With
        `null`, every variant converts at the control's rate.
        """
        rng = random.Random(f"flagstaff-demo-model-{seed}")
        baseline = rng.uniform(0.06, 0.10)
        if null:
            return cls({variant: baseline for variant in VARIANTS})
        lifts = [rng.uniform(0.025, 0.045), rng.uniform(0.0, 0.01),
                 rng.uniform(-0.015, 0.0)]
        rng.shuffle(lifts)
        rates = {CONTROL: baseline}
        rates.update((name, baseline + lift) for name, lift in zip(TREATMENTS, lifts))
        return cls(rates)

    @property
    def best(self) -> Optional[str]:
        """
        The treatment that converts best, if it beats control; None when
        no treatment does.
        """
        name = max(TREATMENTS, key=self.rates.__getitem__)
        return name if self.rates[name] > self.rates[CONTROL] else None

    def rate(self, plan: str, variant: str) -> float:
        """
        The chance that a user of `plan` served `variant` subscribes.
        """
        return self.rates.get(variant, 0.0) if plan == SEGMENT[1] else 0.0


@dataclass(frozen=True)
class Visitor:
    """
    One simulated user: their plan, how many pages they open (each page
    evaluates the flag), and the draw that decides whether they subscribe.
    """

    user: User
    plan: str
    pages: int
    draw: float

    def converts(self, model: HiddenModel, variant: str) -> bool:
        """
        Whether this visitor subscribes after being served `variant`.
        """
        return self.draw < model.rate(self.plan, variant)


def visitors(
    seed: int, count: int, *, premium_share: float = 0.3, start: int = 0
) -> Iterator[Visitor]:
    """
    Yields `count` visitors drawn from `seed`, numbered from `start`: a
    share `premium_share` of them on the premium plan, each opening one to
    three pages.
    """
    rng = random.Random(f"flagstaff-demo-visitors-{seed}-{start}")
    for number in range(start, start + count):
        plan = "premium" if rng.random() < premium_share else "free"
        user = User(f"demo-{seed}-{number:06d}", custom={"plan": plan})
        yield Visitor(user, plan, rng.randint(1, 3), rng.random())


def example_config() -> bytes:
    """
    The example config shipped with flagstaff: ``onboardingFeature`` split
    25/25/25/25 over the four variants for the "Free plan" segment.
    """
    return (resources.files("flagstaff") / "examples" / "onboarding.json").read_bytes()


def _experiment_rule(document: Mapping[str, Any]) -> dict[str, Any]:
    for rule in document["f"][FLAG_KEY].get("r", ()):
        if rule.get("p"):
            return rule
    raise ValueError(f"the config's {FLAG_KEY} has no rule with percentage options")


def split_of(raw: bytes) -> dict[str, float]:
    """
    The experiment's configured split: variant -> percentage, read from the
    percentage options of the flag's first rule that has them.
    """
    rule = _experiment_rule(json.loads(raw))
    return {option["v"]["s"]: option["p"] for option in rule["p"]}


def rolled_out(raw: bytes, variant: str) -> bytes:
    """
    The config with the experiment ended: its rule serves `variant` to
    the whole segment, under the variation id its percentage option had.
    """
    document = json.loads(raw)
    rule = _experiment_rule(document)
    option = next((o for o in rule["p"] if o["v"]["s"] == variant), None)
    if option is None:
        raise ValueError(f"{variant!r} is not one of the experiment's variants")
    del rule["p"]
    rule["s"] = {"v": {"s": variant}, "i": option["i"]}
    return json.dumps(document, indent=2).encode()


def simulated_readout(
    seed: int, users: int, *, null: bool = False, premium_share: float = 0.3
) -> tuple[HiddenModel, Readout]:
    """
    The demo's experiment without its servers: the same visitors and hidden
    model, each free visitor served by the compiled core directly and read
    with the same plan and split. For the same arguments it gives the readout
    that :func:`~flagstaff.demo.run_demo` finds in what its endpoint
    ingested, so many seeds can be checked quickly.

    :return: the hidden model and the :class:`~flagstaff.experiment.Readout`.
    """
    raw = example_config()
    config = Config.from_json(raw)
    model = HiddenModel.draw(seed, null=null)
    exposures = []
    converted = []
    for visitor in visitors(seed, users, premium_share=premium_share):
        if visitor.plan != SEGMENT[1]:
            continue
        variant = config.get_value(FLAG_KEY, CONTROL, visitor.user)
        exposures.append((visitor.user.identifier, variant))
        if visitor.converts(model, variant):
            converted.append(visitor.user.identifier)
    result = readout(exposures, converted, control=CONTROL, weights=split_of(raw),
                     **PLAN)
    return model, result
