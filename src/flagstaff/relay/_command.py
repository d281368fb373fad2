"""
``flagstaff relay``: the arguments of the command and what it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any, AsyncContextManager, Callable, Optional

from .._version import __version__
from ..client._fetch import DataGovernance, check_sdk_key, redact
from ..config import ConfigChange
from ._app import Relay
from ._sources import CDNSource, FileSource, Source

__all__ = ("add_arguments", "run")

logger = logging.getLogger("flagstaff.relay")

#: the environment variable that may carry the admin token
TOKEN_VARIABLE = "FLAGSTAFF_RELAY_ADMIN_TOKEN"

_GOVERNANCE = {"global": DataGovernance.GLOBAL, "eu": DataGovernance.EU_ONLY}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Adds the arguments of ``flagstaff relay`` to `parser`.
    """
    sources = parser.add_argument_group("configs (at least one, or an admin token)")
    sources.add_argument(
        "--config", action="append", default=[], metavar="SDK_KEY=PATH",
        help="serve a local config_v6 file for SDK_KEY, watched for changes; "
             "repeat for more")
    sources.add_argument(
        "--sdk-key", action="append", default=[], metavar="KEY",
        help="serve KEY's config from ConfigCat's CDN (or --base-url); repeat "
             "for more")
    sources.add_argument(
        "--base-url", metavar="URL",
        help="a server speaking the CDN protocol to poll instead of ConfigCat's CDN")
    sources.add_argument(
        "--data-governance", choices=tuple(_GOVERNANCE), default="global",
        help="where ConfigCat keeps the configs (default: global)")
    sources.add_argument(
        "--poll-interval", type=float, default=60.0, metavar="SECONDS",
        help="seconds between two polls of the CDN per key (default: 60)")
    sources.add_argument(
        "--admin-token", default=os.environ.get(TOKEN_VARIABLE), metavar="TOKEN",
        help="enable PUT /admin/configs/SDK_KEY for requests with "
             f"'Authorization: Bearer TOKEN' (default: ${TOKEN_VARIABLE}, "
             "which keeps the token out of the process list)")
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default: 127.0.0.1)")
    server.add_argument("--port", type=int, default=8080,
                        help="the port to listen on (default: 8080)")
    server.add_argument(
        "--max-held", type=int, default=10_000, metavar="N",
        help="hold at most N requests at once; past it requests are answered as "
             "plain polls with Retry-After (default: 10000)")
    server.add_argument(
        "--http", choices=("auto", "h11", "httptools"), default="auto",
        help="uvicorn's HTTP parser: httptools answers a publish's held requests "
             "about twice as fast as h11 (default: auto, httptools when installed)")
    server.add_argument(
        "--shutdown-timeout", type=int, default=10, metavar="SECONDS",
        help="on SIGINT or SIGTERM, answer held requests and wait this long for "
             "open ones (default: 10)")
    server.add_argument(
        "--log-level", default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="the log level of flagstaff and uvicorn (default: info)")


def _sources(args: argparse.Namespace) -> list[Source]:
    """The sources the arguments ask for; ValueError for a bad one."""
    sources: list[Source] = []
    for item in args.config:
        sdk_key, equals, path = item.partition("=")
        if not equals or not sdk_key or not path:
            raise ValueError(f"--config wants SDK_KEY=PATH, not {redact(item)!r}")
        source = FileSource(sdk_key, path)
        source.check()
        sources.append(source)
    governance = _GOVERNANCE[args.data_governance]
    for sdk_key in args.sdk_key:
        check_sdk_key(sdk_key, custom_base_url=args.base_url is not None)
        sources.append(CDNSource(sdk_key, base_url=args.base_url,
                                 data_governance=governance,
                                 interval=args.poll_interval))
    return sources


def _raise_file_limit(wanted: int) -> None:
    """Raises the soft limit of open files towards `wanted` (one per client)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        logger.warning("at most %d files may be open: fewer than the %d connections "
                       "that --max-held asks for", soft, wanted)


def run(
    args: argparse.Namespace,
    *,
    on_flags_changed: Optional[Callable[[ConfigChange], Any]] = None,
    services: Iterable[AsyncContextManager[Any]] = (),
) -> int:
    """
    Runs the relay the arguments describe until SIGINT or SIGTERM.

    :param on_flags_changed: the relay's hook for changed flags.
    :param services: what the relay's lifespan runs beside it, as
        :class:`~flagstaff.relay.Relay` describes.
    :raises ValueError: for a bad argument.
    :raises OSError: when a config file cannot be read.
    :raises ConfigError: when a config file is not a config_v6 document.
    """
    try:
        from ._server import RelayServer, server_config
    except ImportError as exc:
        print(f"flagstaff relay needs uvicorn: pip install 'flagstaff[relay]' ({exc})",
              file=sys.stderr)
        return 2
    sources = _sources(args)
    token = args.admin_token or None
    if not sources and token is None:
        raise ValueError("nothing to serve: give --config, --sdk-key or --admin-token")
    relay = Relay(sources, admin_token=token, max_held=args.max_held,
                  on_flags_changed=on_flags_changed, services=services)
    if token is not None and len(token) < 16:
        logger.warning("the admin token has fewer than 16 characters: easy to guess")

    config = server_config(relay, args.host, args.port, http=args.http,
                           shutdown_timeout=args.shutdown_timeout,
                           log_level=args.log_level)
    _raise_file_limit(args.max_held + 1100)
    keys = ", ".join(f"{source.kind} {redact(source.sdk_key)}" for source in sources)
    parser = "h11" if config.http == "h11" else "httptools"
    logger.info("flagstaff relay %s on http://%s:%d serving %s; admin endpoint %s; "
                "HTTP parser %s", __version__, args.host, args.port,
                keys or "admin configs only", "on" if token is not None else "off",
                parser)
    try:
        RelayServer(config).run()
    except KeyboardInterrupt:
        # uvicorn raises the SIGINT it caught again once it has shut down.
        pass
    return 0
