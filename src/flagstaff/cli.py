"""
The ``flagstaff`` command.

``flagstaff eval`` evaluates settings of a config file for a few users and
prints what each user is served and why. With no arguments it evaluates the
``onboardingFeature`` flag of the example config shipped with flagstaff.

``flagstaff demo`` runs the onboarding experiment end to end on 127.0.0.1:
a relay, long-polling clients, emitters, the readout and the rollout.

``flagstaff evaluate`` evaluates settings for every user of a Parquet or CSV
file and writes the served values to a Parquet or CSV file, streaming record
batches in bounded memory (it needs ``pip install 'flagstaff[arrow]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from importlib import resources
from typing import Optional, Sequence

from . import Config, ConfigError, User

__all__ = ("main",)

#: where ``flagstaff relay --amplitude-annotations`` reads the Amplitude
#: project's API key, secret key and app id
AMPLITUDE_VARIABLES = ("AMPLITUDE_API_KEY", "AMPLITUDE_SECRET_KEY", "AMPLITUDE_APP_ID")

EXAMPLE_USERS = (
    "user-1:plan=free",
    "user-2:plan=free",
    "user-3:plan=premium",
    "user-4:plan=free",
    "user-5:plan=free",
    "user-6:plan=premium",
    "user-7:plan=free",
    "user-8:plan=free",
)


def parse_user(text: str) -> User:
    """
    A user from ``ID[:NAME=VALUE,...]``; ``Email`` and ``Country`` are the
    well-known attributes, any other name is custom.

    :raises ValueError: when an attribute is not ``NAME=VALUE``.
    """
    identifier, _, attributes = text.partition(":")
    known = {"Email": None, "Country": None}
    custom = {}
    for pair in filter(None, attributes.split(",")):
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise ValueError(f"user attribute {pair!r} is not NAME=VALUE")
        if name in known:
            known[name] = value
        else:
            custom[name] = value
    return User(identifier, email=known["Email"], country=known["Country"],
                custom=custom)


def _load_config(path: Optional[str]) -> Config:
    if path is None:
        example = resources.files("flagstaff") / "examples" / "onboarding.json"
        return Config.from_json(example.read_bytes())
    with open(path, "rb") as file:
        return Config.from_json(file.read())


def _describe(details) -> str:
    if details.is_default_value:
        return f"default ({details.error})"
    if details.matched_rule is not None and details.matched_option is not None:
        return (f"rule {details.matched_rule + 1}, "
                f"option {details.matched_option + 1}")
    if details.matched_rule is not None:
        return f"rule {details.matched_rule + 1}"
    if details.matched_option is not None:
        return f"option {details.matched_option + 1}"
    return "value for all others"


def _evaluate(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    keys = args.key or (["onboardingFeature"] if args.config is None
                        else config.keys())
    users = [parse_user(text) for text in (args.user or EXAMPLE_USERS)]

    if not args.json:
        print(f"{'user':<12} {'attributes':<16} {'key':<20} {'value':<10} served by")
    for user in users:
        for key in keys:
            details = config.get_value_details(key, None, user)
            if args.json:
                print(json.dumps({
                    "user": user.identifier,
                    "key": key,
                    "value": details.value,
                    "variation_id": details.variation_id,
                    "error": details.error,
                }))
            else:
                attributes = ",".join(f"{k}={v}" for k, v in user.custom.items())
                print(f"{user.identifier:<12} {attributes:<16} {key:<20} "
                      f"{details.value!s:<10} {_describe(details)}")
    return 0


def _evaluate_file(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("pyarrow") is None:
        raise _MissingExtraError(
            "reading and writing Parquet and CSV needs pyarrow: "
            "pip install 'flagstaff[arrow]'"
        )
    from .batch import _command

    return _command.run(args)


class _MissingExtraError(RuntimeError):
    pass


def _add_evaluate_file(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "evaluate",
        help="evaluate settings for every user of a Parquet or CSV file",
        description="Evaluates settings for every user (row) of a Parquet or "
                    "CSV file, whose columns are user attributes (Identifier, "
                    "Email, Country or custom ones; an empty cell or a null "
                    "is a missing attribute), and writes one column per "
                    "setting to a Parquet or CSV file, batch by batch. CSV "
                    "cells are read as text.",
    )
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="a config_v6 JSON file")
    source.add_argument("--sdk-key", metavar="KEY",
                        help="download the config of this SDK key once")
    command.add_argument("--base-url", metavar="URL",
                         help="with --sdk-key: a server other than ConfigCat's "
                              "CDN (a proxy or a flagstaff relay)")
    command.add_argument("--users", required=True, metavar="FILE",
                         help="the users: .parquet, .pq, .csv, .csv.gz, ...")
    command.add_argument("--key", action="append", metavar="KEY",
                         help="a setting key; repeat for more (default: all "
                              "of the config's)")
    command.add_argument("--output", required=True, metavar="FILE",
                         help="where to write: .parquet, .pq, .csv, .csv.gz, ...")
    command.add_argument("--identifier", default="Identifier", metavar="COLUMN",
                         help="the column of the users' identifiers "
                              "(default: %(default)s)")
    command.add_argument("--keep", action="append", metavar="COLUMN",
                         help="a column of the users file to copy to the "
                              "output, such as Identifier; repeat for more")
    command.add_argument("--batch-size", type=int, default=65536, metavar="ROWS",
                         help="rows per record batch (default: %(default)s); "
                              "memory grows with it, not with the file")
    command.add_argument("--threads", type=int, metavar="N",
                         help="threads that evaluate (default: one per core)")
    command.add_argument("--variation-ids", action="store_true",
                         help="also write a '<key>:variation_id' column per key")


def _add_demo_parser(commands: argparse._SubParsersAction) -> None:
    from .demo import _command

    demo = commands.add_parser(
        "demo",
        help="run the onboarding experiment end to end, on 127.0.0.1 only",
        description=_command.DESCRIPTION,
    )
    _command.add_arguments(demo)


def _demo(args: argparse.Namespace) -> int:
    missing = [name for name in ("uvicorn", "scipy")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise _MissingExtraError(f"the demo needs {' and '.join(missing)}: "
                                 "pip install 'flagstaff[demo]'")
    from .demo import _command

    return _command.run(args)


def _add_relay_parser(commands: argparse._SubParsersAction) -> None:
    from .relay import _command

    relay = commands.add_parser(
        "relay",
        help="serve configs to long-polling clients",
        description="Serves configs on ConfigCat's CDN path and holds each "
                    "request that asks for it (Prefer: wait=N) until its "
                    "config changes. The configs come from local files, "
                    "from ConfigCat's CDN, or from PUT /admin/configs/SDK_KEY; "
                    "GET /health reports them. Needs "
                    "pip install 'flagstaff[relay]'.",
    )
    _command.add_arguments(relay)
    _add_annotation_arguments(relay)


def _add_annotation_arguments(relay: argparse.ArgumentParser) -> None:
    variables = ", ".join(f"${name}" for name in AMPLITUDE_VARIABLES)
    group = relay.add_argument_group("Amplitude chart annotations")
    group.add_argument(
        "--amplitude-annotations", action="store_true",
        help="mark every flag change of a served config on the charts of an "
             f"Amplitude project, with the keys of {variables} (never given on "
             "the command line, which the process list shows)")
    group.add_argument(
        "--amplitude-server-zone", type=str.upper, choices=("US", "EU"),
        default="US", help="where the Amplitude project lives (default: US)")
    group.add_argument(
        "--amplitude-server-url", metavar="URL",
        help="post the annotations to this base URL instead of Amplitude's "
             "(a proxy, a test server)")
    group.add_argument(
        "--amplitude-chart-id", metavar="ID",
        help="annotate this chart only (default: every chart of the project)")


def _chart_annotator(args: argparse.Namespace):
    """
    The annotator that ``--amplitude-annotations`` asks for, or None.

    :raises ValueError: when a key is missing from the environment.
    """
    if not args.amplitude_annotations:
        return None
    from .amplitude import ChartAnnotator

    missing = [name for name in AMPLITUDE_VARIABLES if not os.environ.get(name)]
    if missing:
        raise ValueError("--amplitude-annotations needs the environment variables "
                         + ", ".join(missing))
    api_key, secret_key, app_id = (os.environ[name] for name in AMPLITUDE_VARIABLES)
    return ChartAnnotator(
        api_key, secret_key, app_id, server_zone=args.amplitude_server_zone,
        server_url=args.amplitude_server_url, chart_id=args.amplitude_chart_id,
    )


def _relay(args: argparse.Namespace) -> int:
    from .relay import _command

    try:
        # The relay knows no Amplitude: it hands each change to a hook, and
        # runs the annotator behind the hook for as long as it serves.
        annotator = _chart_annotator(args)
        if annotator is None:
            return _command.run(args)
        return _command.run(args, on_flags_changed=annotator.post_change,
                            services=[annotator])
    except (ConfigError, OSError, ValueError) as exc:
        print(f"flagstaff relay: {exc}", file=sys.stderr)
        return 2


def user_from_json(text: str) -> User:
    """
    A user from a JSON object: ``Identifier``, ``Email`` and ``Country``,
    and any other attribute as custom.

    :raises ValueError: when `text` is not a JSON object.
    """
    try:
        attributes = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--user is not JSON: {exc}") from exc
    if not isinstance(attributes, dict):
        raise ValueError("--user is a JSON object, e.g. '{\"Identifier\": \"u1\"}'")
    identifier = attributes.pop("Identifier", None)
    email, country = attributes.pop("Email", None), attributes.pop("Country", None)
    return User(identifier, email=email, country=country, custom=attributes)


def _add_explain_parser(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain",
        help="tell why a user gets a setting's value",
        description="Explains, rule by rule, why the user given is served "
                    "what they are served for one setting of a config.",
    )
    explain.add_argument("config", help="a config_v6 JSON file")
    explain.add_argument("key", help="the setting key")
    explain.add_argument("--user", metavar="JSON", default=None,
                         help='the user as a JSON object, e.g. \'{"Identifier": '
                              '"u1", "plan": "free"}\' (default: no user)')


def _explain(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    user = user_from_json(args.user) if args.user is not None else None
    print(config.explain(args.key, user))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    Runs the ``flagstaff`` command; returns its exit status.
    """
    parser = argparse.ArgumentParser(
        prog="flagstaff",
        description="Feature flags and experiments on ConfigCat configs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser(
        "eval",
        help="evaluate settings of a config for a few users",
        description="Evaluates settings of a config_v6 file for the users "
                    "given (by default, the onboardingFeature flag of the "
                    "example config for eight example users).",
    )
    evaluate.add_argument("--config", help="a config_v6 JSON file "
                          "(default: the example onboarding config)")
    evaluate.add_argument("--key", action="append",
                          help="a setting key; repeat for more (default: all "
                               "of the config's, or onboardingFeature)")
    evaluate.add_argument("--user", action="append", metavar="ID[:NAME=VALUE,...]",
                          help="a user; repeat for more")
    evaluate.add_argument("--json", action="store_true",
                          help="print one JSON object per evaluation")
    _add_demo_parser(commands)
    _add_evaluate_file(commands)
    _add_explain_parser(commands)
    _add_relay_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "relay":
        return _relay(args)
    if args.command == "evaluate" and args.base_url and not args.sdk_key:
        parser.error("--base-url goes with --sdk-key")

    try:
        if args.command == "evaluate":
            return _evaluate_file(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "demo":
            return _demo(args)
        return _evaluate(args)
    except (ConfigError, OSError, ValueError, _MissingExtraError) as exc:
        print(f"flagstaff {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"flagstaff {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
