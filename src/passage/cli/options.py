"""Command-line flags generated from :data:`passage.config.OPTIONS`.

Flags default to None, so :func:`passage.config.load_config` can tell "not given"
from "given" and let the environment and the TOML file fill the rest.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection

from passage.config import CONFIG_ENV, OPTIONS, Config, Option, load_config

__all__ = ["ADVERTISED_ADDRESS_OPTIONS", "add_config_arguments", "config_from_arguments"]

ADVERTISED_ADDRESS_OPTIONS = frozenset(
    {"data_dir", "database_url", "api_port", "http_port", "public_host", "public_ip",
     "listen_ips", "relay_ips"}
)  # fmt: skip
"""What a command needs to name the address ``passage serve`` advertises, and its store."""


def add_config_arguments(
    parser: argparse.ArgumentParser, only: Collection[str] | None = None
) -> None:
    """Add ``--config`` and the flag of every option (or of those whose dest is in ``only``)."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"TOML configuration file (env {CONFIG_ENV})",
    )
    general = parser.add_argument_group("server")
    turn = parser.add_argument_group("TURN policy")
    for option in OPTIONS:
        if only is None or option.dest in only:
            _add_flag(turn if option.section == "turn" else general, option)


def _add_flag(group: argparse._ArgumentGroup, option: Option) -> None:
    help_text = f"{option.help} (env {option.env})"
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


def config_from_arguments(arguments: argparse.Namespace) -> Config:
    """The configuration for these parsed flags, the process environment and the TOML file."""
    return load_config(vars(arguments), os.environ)
