"""What a subcommand of ``passage`` is: the ``COMMAND`` of a module that
:data:`passage.cli.main.COMMANDS` names."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Command"]


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand. A new command is a new module exporting one of these."""

    name: str
    """The word after ``passage``, e.g. ``serve``."""

    help: str
    """One line for ``passage --help``."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    """Declares the command's flags on its own subparser."""

    run: Callable[[argparse.Namespace], int]
    """Does the work and returns the exit status. May raise ``ConfigError`` (exit 2)."""

    example: str = ""
    """One command line that shows it in use, for the end of ``--help``."""
