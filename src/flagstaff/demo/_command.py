"""
``flagstaff demo``: its arguments, and the run that prints the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import anyio

from ._display import Progress
from ._report import format_report, plot_report, report_json
from ._run import DemoOptions, run_demo

__all__ = ("add_arguments", "run")

DESCRIPTION = (
    "Runs the onboarding experiment end to end on 127.0.0.1: a relay serves "
    "the example config, long-polling clients evaluate onboardingFeature for "
    "a simulated population (free users split over default, feature1, "
    "feature2 and feature3; premium users get default), emitters send "
    "identifies, exposures and 'Subscribed to Premium' to an "
    "Amplitude-compatible endpoint in the process, and the readout of what "
    "arrived decides which variant to roll out; the demo publishes it and "
    "shows it reach every client. The conversion rate of each variant is "
    "drawn from --seed and revealed at the end."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Adds the demo's arguments to `parser`.
    """
    parser.add_argument("--users", type=int, default=20_000, metavar="N",
                        help="visitors during the experiment (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="draws the hidden conversion rates and the "
                             "visitors (default: %(default)s)")
    parser.add_argument("--null", action="store_true",
                        help="give every variant the same conversion rate: "
                             "any winner named is then a false positive")
    parser.add_argument("--clients", type=int, default=4, metavar="N",
                        help="long-polling clients, as processes of an app "
                             "(default: %(default)s)")
    parser.add_argument("--duration", type=float, default=5.0, metavar="SECONDS",
                        help="spread the experiment's traffic over this long; "
                             "0 runs as fast as it can (default: %(default)s)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw conversion per variant with its intervals "
                             "(needs pip install 'flagstaff[plot]')")
    parser.add_argument("--json", action="store_true",
                        help="print the report's figures as JSON")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress display")
    parser.add_argument("--to-amplitude", action="store_true",
                        help="send the events to a real Amplitude project: its "
                             "API key from AMPLITUDE_API_KEY, and to annotate "
                             "its charts AMPLITUDE_SECRET_KEY and "
                             "AMPLITUDE_APP_ID (the simulated users land in "
                             "that project)")
    parser.add_argument("--eu", action="store_true",
                        help="with --to-amplitude: the project is in the EU")
    parser.add_argument("--amplitude-server-url", metavar="URL",
                        help="with --to-amplitude: an Amplitude-compatible "
                             "base URL (a proxy) instead of Amplitude's own")


def _options(args: argparse.Namespace) -> DemoOptions:
    remote = {}
    if args.to_amplitude:
        api_key = os.environ.get("AMPLITUDE_API_KEY")
        if not api_key:
            raise ValueError("--to-amplitude reads the API key from "
                             "AMPLITUDE_API_KEY, which is not set")
        app_id = os.environ.get("AMPLITUDE_APP_ID")
        if app_id is not None and not app_id.isdigit():
            raise ValueError("AMPLITUDE_APP_ID is the project's numeric id")
        remote = {
            "amplitude_api_key": api_key,
            "amplitude_secret_key": os.environ.get("AMPLITUDE_SECRET_KEY"),
            "amplitude_app_id": int(app_id) if app_id else None,
            "server_zone": "EU" if args.eu else "US",
            "amplitude_server_url": args.amplitude_server_url,
        }
    return DemoOptions(users=args.users, seed=args.seed, null=args.null,
                       clients=args.clients, duration=args.duration, **remote)


def run(args: argparse.Namespace) -> int:
    """
    Runs the demo and prints its report; returns the exit status.
    """
    options = _options(args)
    progress = Progress(None if args.quiet or args.json else sys.stderr)
    report = anyio.run(run_demo, options, progress)
    if args.json:
        print(json.dumps(report_json(report), indent=2))
    else:
        print(format_report(report))
    if args.plot:
        plot_report(report, args.plot)
        if not args.json:
            print(f"chart written to {args.plot}")
    return 0
