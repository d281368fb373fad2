"""
The ``flagstaff`` command.

``flagstaff eval`` evaluates settings of a config file for a few users and
prints what each user is served and why. With no arguments it evaluates the
``onboardingFeature`` flag of the example config shipped with flagstaff.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from typing import Optional, Sequence

from . import Config, ConfigError, User

__all__ = ("main",)

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
    args = parser.parse_args(argv)

    try:
        return _evaluate(args)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"flagstaff {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
