"""Command-line flags generated from :data:`passage.config.OPTIONS`.

Flags default to None, so :func:`passage.config.load_config` can tell "not given"
from "given" and let the environment and the TOML file fill the rest.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection

from passage.cli.parsing import deprecated_alias
from passage.config import CONFIG_ENV, OPTIONS, Config, Option, load_config

__all__ = [
    "ADVERTISED_ADDRESS_OPTIONS",
    "SERVER_ADDRESS_OPTIONS",
    "add_config_arguments",
    "config_from_arguments",
]

ADVERTISED_ADDRESS_OPTIONS = frozenset(
    {"data_dir", "database_url", "database_schema", "api_port", "http_port", "public_host",
     "public_ip",
     "listen_ips", "relay_ips"}
)  # fmt: skip
"""What a command needs to name the address ``passage serve`` advertises, and its store."""

SERVER_ADDRESS_OPTIONS = ADVERTISED_ADDRESS_OPTIONS - {"data_dir"}
"""The server's own address settings: a client command names the server with ``--endpoint``
(or finds it from ``--data-dir``); these remain on it only as hidden, deprecated flags."""


def add_config_arguments(
    parser: argparse.ArgumentParser,
    only: Collection[str] | None = None,
    *,
    hidden: Collection[str] = (),
    instead: str = "",
) -> None:
    """Add ``--config`` and the flag of every option (or of those whose dest is in ``only``).

    Those whose dest is in ``hidden`` still work but are not listed, and say they are
    deprecated (use ``instead``): server settings a client command once took.
    """
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"TOML configuration file (env {CONFIG_ENV})",
    )
    general = parser.add_argument_group("server")
    turn = parser.add_argument_group("TURN policy")
    for option in OPTIONS:
        if option.dest in hidden:
            _add_hidden_flag(parser, option, instead)
        elif only is None or option.dest in only:
            _add_flag(turn if option.section == "turn" else general, option)


def _add_hidden_flag(parser: argparse.ArgumentParser, option: Option, instead: str) -> None:
    parser.add_argument(
        option.flag,
        dest=option.dest,
        action=deprecated_alias(instead, append=option.repeated),
        default=None,
        help=argparse.SUPPRESS,
    )


def _add_flag(group: argparse._ArgumentGroup, option: Option) -> None:
    help_text = f"{option.help} (env {option.env}{_default_text(option)})"
    if option.kind.metavar is None:
        group.add_argument(
            option.flag,
            dest=option.dest,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=help_text,
        )
    else:
        group.add_argument(
            option.flag,
            dest=option.dest,
            action="append" if option.repeated else "store",
            metavar=option.kind.metavar,
            default=None,
            help=help_text,
        )


def _default_text(option: Option) -> str:
    """``; default 3478``: the value ``passage serve`` uses when no source sets it."""
    holder: object = Config()
    if option.section:
        holder = getattr(holder, option.section)
    value = getattr(holder, option.name)
    if value in (None, (), False) or option.name in {"users", "auth_secrets"}:
        return ""
    if isinstance(value, tuple) and len(value) == 2 and option.name == "relay_ports":
        value = f"{value[0]}-{value[1]}"
    elif isinstance(value, tuple):
        value = ",".join(str(item) for item in value)
    return f"; default {value}"


def config_from_arguments(arguments: argparse.Namespace) -> Config:
    """The configuration for these parsed flags, the process environment and the TOML file."""
    return load_config(vars(arguments), os.environ)
