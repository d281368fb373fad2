"""
The demo's report: in words for a reader, as JSON for a script, and as a
chart of conversion per variant.
"""

from __future__ import annotations

import os
from typing import Any, Union

from ._run import DemoReport
from ._world import CONTROL, CONVERSION_EVENT, FLAG_KEY, VARIANTS

__all__ = ("format_report", "plot_report", "report_json")


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def format_report(report: DemoReport) -> str:
    """
    The report as text: what was sent, the readout, the rollout, and the
    hidden model revealed.
    """
    options, readout, rollout = report.options, report.readout, report.rollout
    free, premium = report.plans.get("free", 0), report.plans.get("premium", 0)
    ingested = report.ingested
    exposures = ingested.get("$exposure", 0)
    emitted = report.emitted
    lines = [
        f"flagstaff demo: which onboarding feature converts free users best "
        f"(seed {options.seed}{', null model' if options.null else ''})",
        "",
        "What was served and recorded",
        f"  {options.users:,} visitors ({free:,} free, {premium:,} premium), "
        f"{report.evaluations:,} evaluations of {FLAG_KEY} by "
        f"{options.clients} long-polling clients",
        f"  sent to {report.destination}: {exposures:,} exposures, "
        f"{ingested.get('$identify', 0):,} identifies (plan and variant), "
        f"{ingested.get(CONVERSION_EVENT, 0):,} \"{CONVERSION_EVENT}\"",
        f"  counted once: the emitters left out {emitted.exposures_deduplicated:,} "
        f"repeated exposures, the insert ids {report.repeats:,} more sent by "
        "another client",
        f"  delivery: {emitted.delivered:,} delivered in {emitted.requests:,} "
        f"requests, {emitted.dropped:,} dropped, {emitted.queued:,} still queued",
        "",
        "The readout: free plan, exposures up to the rollout",
        *(("  " + line).rstrip() for line in readout.format().splitlines()),
    ]
    if report.audit is not None:
        audit = report.audit
        lines.append(f"  assignment audit: {audit.checked:,} exposed users "
                     f"recomputed by the batch core, {audit.disagreeing:,} disagree")
    arrivals = [a for a in rollout.arrivals if a is not None]
    reach = f"{len(arrivals)} of {len(rollout.arrivals)} clients"
    if arrivals:
        reach += (f" had it {min(arrivals) * 1000:.1f} to "
                  f"{max(arrivals) * 1000:.1f} ms after the publish")
    free_after = sum(rollout.served_after.values())
    served = ", ".join(f"{count:,} {variant}"
                       for variant, count in sorted(rollout.served_after.items()))
    action = ("roll out " + rollout.variant if readout.winner
              else f"keep {CONTROL} (no treatment beat control)")
    lines += [
        "",
        "The decision",
        f"  {action} for the free plan: {reach}",
        f"  {options.after_rollout:,} visitors after it: the {free_after:,} free "
        f"ones were served {served or 'nothing'}",
    ]
    for label, details in rollout.annotations:
        lines.append(f"  Amplitude chart annotation: {label}")
        lines += [f"    {line}" for line in (details or "").splitlines()]
    model = report.model
    best = model.best
    rates = ", ".join(f"{variant} {_pct(model.rates[variant])}"
                      + (" (best)" if variant == best else "")
                      for variant in VARIANTS)
    verdict = "right" if report.correct else "wrong"
    named = readout.winner or "no winner"
    truth = best or "no treatment better than control"
    lines += [
        "",
        "The hidden model, revealed",
        f"  free users convert at: {rates}",
        f"  the readout named {named}; the truth is {truth}: {verdict}",
        "",
        f"done in {report.elapsed:.1f} s",
    ]
    return "\n".join(lines)


def report_json(report: DemoReport) -> dict[str, Any]:
    """
    The report's figures, for scripts that run the demo many times.
    """
    readout = report.readout
    return {
        "seed": report.options.seed,
        "null": report.options.null,
        "users": report.options.users,
        "model": dict(report.model.rates),
        "best": report.model.best,
        "winner": readout.winner,
        "correct": report.correct,
        "conclusive": readout.conclusive,
        "status": readout.status,
        "variants": {v.variant: {"exposed": v.exposed, "conversions": v.conversions,
                                 "rate": v.rate, "low": v.low, "high": v.high}
                     for v in readout.variants},
        "comparisons": {c.variant: {"difference": c.difference,
                                    "p_value": c.p_value,
                                    "adjusted_p_value": c.adjusted_p_value,
                                    "significant": c.significant}
                        for c in readout.comparisons},
        "sample_ratio_p": readout.sample_ratio and readout.sample_ratio.p_value,
        "audit_disagreeing": report.audit and report.audit.disagreeing,
        "rollout": _rollout_json(report),
        "ingested": report.ingested,
        "dropped": report.emitted.dropped,
        "elapsed": report.elapsed,
    }


def _rollout_json(report: DemoReport) -> dict[str, Any]:
    rollout = report.rollout
    return {"variant": rollout.variant, "arrivals": list(rollout.arrivals),
            "served_after": rollout.served_after,
            "annotations": [{"label": label, "details": details}
                            for label, details in rollout.annotations]}


def plot_report(report: DemoReport, path: Union[str, os.PathLike[str]]) -> None:
    """
    Draws the conversion rate of each variant with its interval, and the
    model's true rate, to an image file (PNG, SVG or PDF by its suffix).

    :raises ImportError: without matplotlib (``pip install 'flagstaff[plot]'``).
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("--plot draws with matplotlib: "
                          "pip install 'flagstaff[plot]'") from exc
    matplotlib.use("Agg")
    from matplotlib import pyplot

    readout = report.readout
    names = [v.variant for v in readout.variants]
    rates = [v.rate * 100 for v in readout.variants]
    below = [(v.rate - v.low) * 100 for v in readout.variants]
    above = [(v.high - v.rate) * 100 for v in readout.variants]
    colours = ["#4c72b0" if name != readout.winner else "#dd8452" for name in names]

    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=120)
    axes.bar(names, rates, color=colours, yerr=[below, above], capsize=6,
             error_kw={"ecolor": "#333333", "elinewidth": 1.2},
             label=f"observed, with its {readout.confidence:.0%} Wilson interval")
    truth = [report.model.rates.get(name, 0.0) * 100 for name in names]
    axes.scatter(names, truth, marker="D", s=36, color="#c44e52", zorder=3,
                 label="the hidden true rate")
    control = readout.variant(readout.control).rate * 100
    axes.axhline(control, color="grey", linestyle=":", linewidth=1)
    axes.set_ylabel("free users who subscribed (%)")
    winner = readout.winner or "none"
    axes.set_title(f"{FLAG_KEY}: conversion per variant (winner: {winner})")
    axes.legend(loc="upper left", fontsize=8)
    axes.set_ylim(0, max(v.high for v in readout.variants) * 100 * 1.25)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
