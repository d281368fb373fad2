"""
``flagstaff demo``: the onboarding experiment end to end, in one process and
on 127.0.0.1 only. A relay serves the example config, long-polling clients
evaluate ``onboardingFeature`` for a simulated population whose conversion
rates only the simulation knows, emitters send identifies, exposures and
``Subscribed to Premium`` to an Amplitude-compatible endpoint, and the
readout of what arrived there decides the rollout, which the demo publishes
and follows to every client.

It needs the relay and experiment extras (``pip install 'flagstaff[demo]'``).
"""

from ._display import Progress
from ._report import format_report, plot_report, report_json
from ._run import DemoOptions, DemoReport, Rollout, run_demo
from ._world import HiddenModel

__all__ = (
    "DemoOptions",
    "DemoReport",
    "HiddenModel",
    "Progress",
    "Rollout",
    "format_report",
    "plot_report",
    "report_json",
    "run_demo",
)
