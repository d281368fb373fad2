"""How many users per variant an experiment needs before it is read."""

from __future__ import annotations

import math

from ._scipy import stats


def users_per_variant(
    baseline: float,
    minimum_detectable_effect: float,
    alpha: float = 0.05,
    power: float = 0.8,
    comparisons: int = 3,
) -> int:
    """
    Returns the users each variant needs to detect a given lift over control.

    The classic two-sided power calculation for two proportions (the normal
    approximation with the pooled variance under the null hypothesis and the
    unpooled variance under the alternative). The family of ``comparisons``
    treatments against control is planned with Bonferroni's ``alpha /
    comparisons``: it is never smaller than what Holm's correction, used by the
    readout, needs, so the horizon is on the safe side.

    :param baseline: the control's conversion rate, between 0 and 1.
    :param minimum_detectable_effect: the smallest lift worth finding, in
        absolute terms (0.02 is two percentage points over ``baseline``).
    :param alpha: the family-wise false-positive rate.
    :param power: the chance of finding a lift of exactly that size.
    :param comparisons: how many treatments are compared with control.
    :return: users per variant, rounded up.
    :raises ValueError: for a rate, effect, alpha or power out of range.
    """
    treated = baseline + minimum_detectable_effect
    if not 0 < baseline < 1:
        raise ValueError(f"baseline is a rate between 0 and 1, not {baseline!r}")
    if minimum_detectable_effect == 0 or not 0 < treated < 1:
        raise ValueError(
            "minimum_detectable_effect is a non-zero absolute lift that keeps "
            f"baseline + effect between 0 and 1, not {minimum_detectable_effect!r}"
        )
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power are between 0 and 1")
    if comparisons < 1:
        raise ValueError(f"comparisons is at least 1, not {comparisons!r}")

    norm = stats().norm
    z_alpha = norm.ppf(1 - alpha / comparisons / 2)
    z_power = norm.ppf(power)
    pooled = (baseline + treated) / 2
    null_sd = math.sqrt(2 * pooled * (1 - pooled))
    alt_sd = math.sqrt(baseline * (1 - baseline) + treated * (1 - treated))
    n = ((z_alpha * null_sd + z_power * alt_sd) / minimum_detectable_effect) ** 2
    return math.ceil(n)
