"""
The readout of an experiment: per variant rates with Wilson intervals, each
treatment against control with a Newcombe interval and a Holm-corrected
two-proportion z-test, a sample-ratio-mismatch check and a fixed horizon.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from ._planning import users_per_variant
from ._scipy import stats

#: The p-value below which the exposed counts are said not to follow the split.
SRM_THRESHOLD = 0.001

DEFAULT_EXPOSURE_EVENT = "$exposure"
DEFAULT_CONVERSION_EVENT = "Subscribed to Premium"

Source = Union["os.PathLike[str]", str, Any]


@dataclass(frozen=True)
class VariantResult:
    """
    One variant's users exposed, conversions and conversion rate.

    ``low`` and ``high`` bound the rate with a Wilson score interval.
    """

    variant: str
    exposed: int
    conversions: int
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    """
    One treatment against control.

    ``difference`` is the treatment's rate minus control's; ``low`` and
    ``high`` bound it with Newcombe's hybrid score interval (from the two
    Wilson intervals). ``p_value`` is the two-sided pooled two-proportion
    z-test, ``adjusted_p_value`` the same after Holm's correction over all
    comparisons of the readout.
    """

    variant: str
    control: str
    difference: float
    low: float
    high: float
    p_value: float
    adjusted_p_value: float
    significant: bool


@dataclass(frozen=True)
class SampleRatioCheck:
    """
    A chi-square test of the exposed counts against the configured split.

    ``flagged`` when ``p_value`` is below :data:`SRM_THRESHOLD`: the assignment
    or its logging is broken and the rates are not to be trusted.
    """

    observed: Mapping[str, int]
    expected: Mapping[str, float]
    statistic: float
    p_value: float
    flagged: bool


@dataclass(frozen=True)
class Readout:
    """
    The result of an experiment, as :func:`readout` computes it.

    ``winner`` is the treatment with the largest positive difference among
    those whose Holm-adjusted p-value is below ``alpha``, named only once the
    smallest variant reached the ``horizon`` and the split passed the
    sample-ratio check; otherwise it is ``None`` and ``status`` says why.
    ``str(readout)`` is :meth:`format`.
    """

    control: str
    variants: tuple[VariantResult, ...]
    comparisons: tuple[Comparison, ...]
    sample_ratio: SampleRatioCheck | None
    alpha: float
    confidence: float
    horizon: int | None
    conclusive: bool
    winner: str | None
    status: str
    notes: tuple[str, ...] = field(default=())

    def variant(self, name: str) -> VariantResult:
        """
        Returns the result of one variant.

        :raises KeyError: for a variant the readout does not hold.
        """
        for result in self.variants:
            if result.variant == name:
                return result
        raise KeyError(name)

    def comparison(self, name: str) -> Comparison:
        """
        Returns the comparison of one treatment with control.

        :raises KeyError: for the control or an unknown variant.
        """
        for result in self.comparisons:
            if result.variant == name:
                return result
        raise KeyError(name)

    def format(self) -> str:
        """
        Returns the readout as a text table, with its verdict and checks.
        """
        pct = f"{self.confidence:.0%}"
        rows = [("variant", "exposed", "conv.", "rate", f"{pct} interval",
                 "diff vs control", f"{pct} interval", "p", "p (Holm)")]
        by_variant = {c.variant: c for c in self.comparisons}
        for v in self.variants:
            row = [v.variant, f"{v.exposed:,}", f"{v.conversions:,}",
                   _pct(v.rate), f"{_pct(v.low)} .. {_pct(v.high)}"]
            c = by_variant.get(v.variant)
            if c is None:
                row += ["(control)", "", "", ""]
            else:
                row += [_pp(c.difference), f"{_pp(c.low)} .. {_pp(c.high)}",
                        _p(c.p_value), _p(c.adjusted_p_value)
                        + (" *" if c.significant else "")]
            rows.append(tuple(row))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(r, widths))).rstrip()
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))

        lines.append("")
        if self.horizon is None:
            lines.append("horizon: none fixed in advance")
        else:
            smallest = min((v.exposed for v in self.variants), default=0)
            lines.append(f"horizon: {self.horizon:,} users per variant "
                         f"(smallest variant has {smallest:,})")
        if self.sample_ratio is not None:
            srm = self.sample_ratio
            verdict = "MISMATCH" if srm.flagged else "ok"
            lines.append(f"sample ratio: chi2 = {srm.statistic:.2f}, "
                         f"p {_p_is(srm.p_value)} ({verdict}, "
                         f"flagged below {SRM_THRESHOLD})")
        lines.append(f"* Holm-adjusted p < {self.alpha}; differences in "
                     "percentage points, Newcombe intervals; two-proportion "
                     "z-test")
        lines.extend(self.notes)
        lines.append(f"verdict: {self.status}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def readout(
    exposures: Source | Iterable[tuple[Any, str]],
    conversions: Iterable[Any] | None = None,
    *,
    control: str = "default",
    weights: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    horizon: int | None = None,
    baseline: float | None = None,
    minimum_detectable_effect: float | None = None,
    power: float = 0.8,
    user_column: str = "user_id",
    variant_column: str = "variant",
    event_column: str = "event",
    exposure_event: str = DEFAULT_EXPOSURE_EVENT,
    conversion_event: str = DEFAULT_CONVERSION_EVENT,
) -> Readout:
    """
    Reads an experiment from its exposures and conversions.

    The events come either as one table of events (a pyarrow Table, or the
    path of a Parquet or CSV file, such as an export from Amplitude) with a
    user id, a variant and an event name per row, or as ``exposures``, an
    iterable of ``(user_id, variant)`` pairs, and ``conversions``, an iterable
    of the user ids that converted. A user counts once per variant (the first
    variant recorded for them; users seen in more than one are counted in the
    notes) and converts when any conversion of theirs is recorded.

    :param exposures: the event table, its path, or the exposure pairs.
    :param conversions: with exposure pairs, the ids of the converted users;
        with a table, ``None``.
    :param control: the control variant; every other variant is a treatment.
    :param weights: the configured split, variant to weight (default: equal
        over the variants seen); variants named here and never seen count as
        exposed to nobody.
    :param alpha: the family-wise error rate of the comparisons.
    :param confidence: the level of the intervals.
    :param horizon: users per variant fixed in advance; before the smallest
        variant reaches it the readout is not conclusive.
    :param baseline: with ``minimum_detectable_effect`` and no ``horizon``,
        the planned control rate from which :func:`users_per_variant`
        computes the horizon.
    :param minimum_detectable_effect: the planned absolute lift.
    :param power: the planned power.
    :param user_column: the table's user id column.
    :param variant_column: the table's variant column.
    :param event_column: the table's event name column.
    :param exposure_event: the event name of an exposure.
    :param conversion_event: the event name of a conversion.
    :return: the :class:`Readout`.
    :raises ValueError: for a missing control, bad weights or mixed inputs.
    :raises ImportError: without scipy (``pip install 'flagstaff[experiment]'``).
    """
    if _is_table_source(exposures):
        if conversions is not None:
            raise ValueError("conversions come from the table's events; pass None")
        table = _read_table(exposures)
        pairs, converted = _events_from_table(
            table, user_column, variant_column, event_column,
            exposure_event, conversion_event)
    else:
        pairs = exposures
        converted = set(conversions) if conversions is not None else set()

    assigned: dict = {}
    switched = set()
    for user, variant in pairs:
        first = assigned.setdefault(user, variant)
        if first != variant:
            switched.add(user)
    counts: dict = {}
    for user, variant in assigned.items():
        entry = counts.setdefault(variant, [0, 0])
        entry[0] += 1
        entry[1] += user in converted

    notes = []
    if switched:
        notes.append(f"note: {len(switched):,} users were exposed to more than one "
                     "variant; each counts in the first")
    return readout_from_counts(
        {v: (n, k) for v, (n, k) in counts.items()}, control=control,
        weights=weights, alpha=alpha, confidence=confidence, horizon=horizon,
        baseline=baseline, minimum_detectable_effect=minimum_detectable_effect,
        power=power, notes=notes)


def readout_from_counts(
    counts: Mapping[str, tuple[int, int]],
    *,
    control: str = "default",
    weights: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    horizon: int | None = None,
    baseline: float | None = None,
    minimum_detectable_effect: float | None = None,
    power: float = 0.8,
    notes: Sequence[str] = (),
) -> Readout:
    """
    Reads an experiment from counts already aggregated per variant.

    :param counts: variant to ``(users exposed, users converted)``.
    :param notes: lines added to the formatted readout.
    :return: the :class:`Readout`; the other parameters are :func:`readout`'s.
    :raises ValueError: for a missing control, bad counts or bad weights.
    """
    if not 0 < alpha < 1 or not 0 < confidence < 1:
        raise ValueError("alpha and confidence are between 0 and 1")
    counts = dict(counts)
    if weights is not None:
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights are non-negative and not all zero")
        unplanned = set(counts) - set(weights)
        if unplanned:
            raise ValueError(f"variants missing from weights: {sorted(unplanned)}")
        for variant in weights:
            counts.setdefault(variant, (0, 0))
    if control not in counts:
        raise ValueError(f"the control variant {control!r} has no exposures")
    for variant, (n, k) in counts.items():
        if not 0 <= k <= n:
            raise ValueError(f"variant {variant!r}: conversions {k} out of 0..{n}")

    order = [control] + sorted(v for v in counts if v != control)
    if weights is None:
        weights = {v: 1.0 for v in order}
    variants = tuple(_variant(v, *counts[v], confidence) for v in order)
    comparisons = _compare(variants, alpha, confidence)
    sample_ratio = _sample_ratio(variants, weights)

    if horizon is None and baseline is not None and minimum_detectable_effect:
        horizon = users_per_variant(baseline, minimum_detectable_effect, alpha,
                                    power, max(1, len(comparisons)))
    smallest = min(v.exposed for v in variants)
    conclusive = horizon is None or smallest >= horizon
    winners = [c for c in comparisons if c.significant and c.difference > 0]
    best = max(winners, key=lambda c: c.difference) if winners else None

    notes = list(notes)
    if horizon is None:
        notes.append("note: no horizon was fixed in advance; stopping when the "
                     "numbers look good inflates false positives")
    if sample_ratio is not None and sample_ratio.flagged:
        status = ("sample ratio mismatch: the exposed counts do not follow the "
                  "split; fix assignment or logging before reading the rates")
        winner = None
    elif not conclusive:
        status = (f"not conclusive yet: the smallest variant has {smallest:,} of "
                  f"the {horizon:,} users planned")
        winner = None
    elif best is not None:
        status = (f"{best.variant} wins: {_pp(best.difference)} over {control} "
                  f"(Holm-adjusted p {_p_is(best.adjusted_p_value)})")
        winner = best.variant
    else:
        status = f"no treatment beats {control} at alpha = {alpha}"
        winner = None
    return Readout(control=control, variants=variants, comparisons=comparisons,
                   sample_ratio=sample_ratio, alpha=alpha, confidence=confidence,
                   horizon=horizon, conclusive=conclusive, winner=winner,
                   status=status, notes=tuple(notes))


def wilson_interval(conversions: int, exposed: int,
                    confidence: float = 0.95) -> tuple[float, float]:
    """
    Returns the Wilson score interval of a rate of ``conversions / exposed``.

    :return: ``(low, high)``; ``(0.0, 1.0)`` when nobody was exposed.
    """
    if exposed == 0:
        return 0.0, 1.0
    z = stats().norm.ppf(1 - (1 - confidence) / 2)
    p = conversions / exposed
    denominator = 1 + z * z / exposed
    centre = (p + z * z / (2 * exposed)) / denominator
    half = z * math.sqrt(p * (1 - p) / exposed
                         + z * z / (4 * exposed * exposed)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def holm(p_values: Sequence[float]) -> tuple[float, ...]:
    """
    Returns Holm's step-down adjusted p-values, in the order given.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return tuple(adjusted)


def _variant(name: str, exposed: int, conversions: int,
             confidence: float) -> VariantResult:
    rate = conversions / exposed if exposed else 0.0
    low, high = wilson_interval(conversions, exposed, confidence)
    return VariantResult(name, exposed, conversions, rate, low, high)


def _compare(variants: Sequence[VariantResult], alpha: float,
             confidence: float) -> tuple[Comparison, ...]:
    control, treatments = variants[0], variants[1:]
    norm = stats().norm
    raw = []
    for t in treatments:
        difference = t.rate - control.rate
        # Newcombe's method 10: combine the distances from each rate to the
        # ends of its own Wilson interval, which keeps the bounds honest for
        # rates near 0 or 1 where the plain normal interval undercovers.
        low = difference - math.hypot(t.rate - t.low, control.high - control.rate)
        high = difference + math.hypot(t.high - t.rate, control.rate - control.low)
        n0, n1 = control.exposed, t.exposed
        pooled = ((control.conversions + t.conversions) / (n0 + n1)
                  if n0 and n1 else 0.0)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1)) if pooled else 0.0
        if se > 0:
            p_value = float(2 * norm.sf(abs(difference) / se))
        else:
            # No variance (no users, or everybody or nobody converted on
            # both sides): nothing can be told apart.
            p_value = 1.0
        raw.append((t.variant, difference, low, high, p_value))
    adjusted = holm([r[4] for r in raw])
    return tuple(
        Comparison(v, control.variant, d, lo, hi, p, adj, adj < alpha)
        for (v, d, lo, hi, p), adj in zip(raw, adjusted))


def _sample_ratio(variants: Sequence[VariantResult],
                  weights: Mapping[str, float]) -> SampleRatioCheck | None:
    observed = {v.variant: v.exposed for v in variants}
    total = sum(observed.values())
    planned = {v: weights.get(v, 0.0) for v in observed}
    weight_sum = sum(planned.values())
    if len(observed) < 2 or total == 0 or weight_sum <= 0:
        return None
    expected = {v: total * w / weight_sum for v, w in planned.items()}
    if any(expected[v] == 0 and observed[v] > 0 for v in observed):
        # Users in a variant planned at 0 %: as mismatched as it gets.
        return SampleRatioCheck(observed, expected, math.inf, 0.0, True)
    kept = [v for v in observed if expected[v] > 0]
    result = stats().chisquare([observed[v] for v in kept],
                               [expected[v] for v in kept])
    p_value = float(result.pvalue)
    return SampleRatioCheck(observed, expected, float(result.statistic), p_value,
                            p_value < SRM_THRESHOLD)


def _is_table_source(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return True
    return type(source).__module__.startswith("pyarrow")


def _read_table(source: Any) -> Any:
    if not isinstance(source, (str, os.PathLike)):
        return source
    path = os.fspath(source)
    if path.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if path.endswith((".csv", ".csv.gz")):
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    raise ValueError(f"{path}: reads .parquet or .csv files")


def _events_from_table(table: Any, user_column: str, variant_column: str,
                       event_column: str, exposure_event: str,
                       conversion_event: str) -> tuple[list, set]:
    import pyarrow.compute as pc

    missing = [c for c in (user_column, variant_column, event_column)
               if c not in table.column_names]
    if missing:
        raise ValueError(f"the events table has no column {missing[0]!r} "
                         f"(columns: {table.column_names})")
    events = table.column(event_column)
    exposed = table.filter(pc.equal(events, exposure_event))
    pairs = [(user, variant) for user, variant in
             zip(exposed.column(user_column).to_pylist(),
                 exposed.column(variant_column).to_pylist())
             if user is not None and variant is not None]
    converted = table.filter(pc.equal(events, conversion_event))
    return pairs, set(converted.column(user_column).to_pylist())


def _pct(rate: float) -> str:
    return f"{rate:.2%}"


def _pp(difference: float) -> str:
    return f"{difference * 100:+.2f} pp"


def _p(p_value: float) -> str:
    return "<0.0001" if p_value < 1e-4 else f"{p_value:.4f}"


def _p_is(p_value: float) -> str:
    text = _p(p_value)
    return f"< {text[1:]}" if text.startswith("<") else f"= {text}"
