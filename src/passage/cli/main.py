"""The ``passage`` command: a table of subcommands, one module each, imported on demand.

``passage --help`` and ``passage --version`` import no command module, and
``passage CMD`` imports only CMD's: the server, the SDKs and the store stay
unloaded until a command needs them (``bench/cli_startup.py`` measures it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from passage import __version__
from passage.cli.parsing import EXIT_USAGE, HelpFormatter, PassageParser, misspelled_variables

__all__ = ["COMMANDS", "EXIT_USAGE", "CommandEntry", "build_parser", "main"]


class CommandEntry:
    """A subcommand as ``passage --help`` lists it; its module holds the rest (``COMMAND``).

    A plain class: ``dataclasses`` and ``typing`` would cost ``passage --help`` ~20 ms.
    """

    __slots__ = ("help", "module", "name")

    def __init__(self, name: str, module: str, help: str) -> None:
        self.name = name
        self.module = module
        self.help = help


COMMANDS: tuple[CommandEntry, ...] = (
    CommandEntry(
        "serve", "serve", "run the STUN/TURN relay, the API, Hybrid Connections and signaling"
    ),
    CommandEntry(
        "reload",
        "reload",
        "make the server on a data directory re-read its configuration and certificate",
    ),
    CommandEntry(
        "turn-credentials", "turn_credentials", "print an ephemeral TURN username and password"
    ),
    CommandEntry(
        "connection-string",
        "connection_string",
        "print the connection string ACS SDKs use to reach this deployment",
    ),
    CommandEntry(
        "console-link",
        "console_link",
        "print a one-time link that signs a browser in to the web console",
    ),
    CommandEntry("token", "token", "mint a user access token (for pipe, doctor and signaling)"),
    CommandEntry("keys", "keys", "rotate or show the access keys"),
    CommandEntry("usage", "usage", "print relayed usage per identity and hour or day"),
    CommandEntry(
        "hc", "hc", "manage Hybrid Connections: connections, authorization rules, SAS tokens"
    ),
    CommandEntry(
        "expose", "expose", "make a local TCP or HTTP service reachable through a hybrid connection"
    ),
    CommandEntry(
        "connect",
        "connect",
        "a local TCP port whose connections reach a service exposed through the relay",
    ),
    CommandEntry(
        "doctor",
        "doctor",
        "measure what the network lets through to the relay, and the media path to expect",
    ),
    CommandEntry(
        "pipe",
        "pipe",
        "stdin/stdout to the other side of a room, over the most direct path (like nc)",
    ),
)
"""Every subcommand, in the order ``passage --help`` lists them."""

EXIT_BROKEN_PIPE = 141
"""Exit status when stdout's reader has gone: 128 + SIGPIPE, as a shell reports it."""

EXAMPLES = """\
examples:
  passage serve --data-dir .passage
  passage connection-string --data-dir .passage
  passage doctor --data-dir .passage
  passage COMMAND --help     what each command does, its defaults, an example"""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``passage``; the flags of the command ``argv`` names (all of them
    when ``argv`` is None), so a run imports one command module at most."""
    parser = PassageParser(
        prog="passage",
        description="Self-hosted STUN/TURN relay and network traversal.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"passage {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    wanted = _command_named(argv)
    for entry in COMMANDS:
        if argv is None or entry.name == wanted:
            command = importlib.import_module(f"passage.cli.{entry.module}").COMMAND
            subparser = subparsers.add_parser(
                entry.name,
                help=entry.help,
                description=f"{command.help[0].upper()}{command.help[1:]}.",
                epilog=f"example:\n  {command.example}" if command.example else None,
                formatter_class=HelpFormatter,
            )
            command.add_arguments(subparser)
            subparser.set_defaults(command=command)
        else:
            subparsers.add_parser(entry.name, help=entry.help)
    return parser


def _command_named(argv: Sequence[str] | None) -> str | None:
    """The command word in ``argv``: its first argument that is not an option."""
    for argument in argv or ():
        if not argument.startswith("-"):
            return argument
    return None


def main(argv: list[str] | None = None) -> int:
    """Run ``passage`` with ``argv`` (default: the process arguments); return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    arguments = parser.parse_args(argv)
    command = getattr(arguments, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # Imported once a command runs: --help and --version need neither.
    from passage.cli.variables import known_variables
    from passage.config import ConfigError

    for warning in misspelled_variables(os.environ, known_variables()):
        print(warning, file=sys.stderr)
    try:
        status: int = command.run(arguments)
    except ConfigError as exc:
        print(f"passage: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (``| head``): as other Unix tools, stop quietly.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush raises nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
