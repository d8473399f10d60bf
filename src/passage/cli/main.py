"""The ``passage`` command: a table of subcommands, one module each."""

from __future__ import annotations

import argparse
import os
import sys

from passage import __version__
from passage.cli import (
    connect,
    connection_string,
    doctor,
    expose,
    hc,
    keys,
    pipe,
    serve,
    turn_credentials,
    usage,
)
from passage.cli.command import Command
from passage.config import ConfigError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[Command, ...] = (
    serve.COMMAND,
    turn_credentials.COMMAND,
    connection_string.COMMAND,
    keys.COMMAND,
    usage.COMMAND,
    hc.COMMAND,
    expose.COMMAND,
    connect.COMMAND,
    doctor.COMMAND,
    pipe.COMMAND,
)
"""Every subcommand, in the order ``passage --help`` lists them."""

EXIT_USAGE = 2
"""Exit status for a bad command line or configuration, as argparse uses."""

EXIT_BROKEN_PIPE = 141
"""Exit status when stdout's reader has gone: 128 + SIGPIPE, as a shell reports it."""


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``passage`` and every subcommand in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="passage", description="Self-hosted STUN/TURN relay and network traversal."
    )
    parser.add_argument("--version", action="version", version=f"passage {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        subparser = subparsers.add_parser(command.name, help=command.help)
        command.add_arguments(subparser)
        subparser.set_defaults(command=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``passage`` with ``argv`` (default: the process arguments); return the exit status."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    command: Command | None = getattr(arguments, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return command.run(arguments)
    except ConfigError as exc:
        print(f"passage: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (``| head``): as other Unix tools, stop quietly.
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush raises nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
