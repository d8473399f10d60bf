"""The parser every ``passage`` command uses, and the checks made before a command runs.

- An unknown flag gets the command's own usage (``passage hc create``'s, not
  ``passage``'s) and the closest flag it has: ``did you mean --data-dir?``.
- A misspelled ``PASSAGE_*`` environment variable gets a warning with the
  variable it is closest to, as a misspelled TOML key does.
- An old spelling of a flag or variable still works, and says once what it is
  now called (:func:`deprecated_alias`, :data:`ENV_ALIASES`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence

TYPE_CHECKING = False  # typing costs ~10 ms at start: passage --help does without it
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = [
    "ENV_ALIASES",
    "EXIT_USAGE",
    "HelpFormatter",
    "PassageParser",
    "deprecated_alias",
    "env_value",
    "misspelled_variables",
]

EXIT_USAGE = 2
"""Exit status for a bad command line or configuration, as argparse uses."""

ENV_ALIASES: Mapping[str, str] = {"PASSAGE_USER_TOKEN": "PASSAGE_TOKEN"}
"""Old variable → the one it is now; the old one still works, with a warning."""

_UNKNOWN = "passage_unknown_arguments"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in every flag's help (``(default: 3478)``), the example kept as written; for
    commands and their nested actions (``passage hc rule add``) alike."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class PassageParser(argparse.ArgumentParser):
    """An argparse parser whose unknown flags are reported by the subcommand that got them."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        # The innermost subcommand parses first; its claim stands.
        if extras and not hasattr(parsed, _UNKNOWN):
            setattr(parsed, _UNKNOWN, (self, list(extras)))
        return parsed, extras

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            owner, unknown = getattr(parsed, _UNKNOWN, (self, extras))
            owner.unknown_arguments(unknown)
        if hasattr(parsed, _UNKNOWN):
            delattr(parsed, _UNKNOWN)
        return parsed

    def unknown_arguments(self, unknown: Sequence[str]) -> NoReturn:
        """Usage, then one line naming the first unknown argument and the closest flag."""
        import difflib  # only a mistake needs it

        first = unknown[0]
        hint = ""
        if first.startswith("-"):
            close = difflib.get_close_matches(first.split("=", 1)[0], self.visible_flags(), n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (see {self.prog} --help)"
        noun = "argument" if len(unknown) == 1 else "arguments"
        self.print_usage(sys.stderr)
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: unrecognized {noun}: {' '.join(unknown)}{hint}\n"
        )

    def visible_flags(self) -> list[str]:
        """The long flags ``--help`` lists (hidden deprecated spellings are not suggested)."""
        return [
            flag
            for action in self._actions
            if action.help != argparse.SUPPRESS
            for flag in action.option_strings
            if flag.startswith("--")
        ]


def deprecated_alias(new_flag: str, *, append: bool = False) -> type[argparse.Action]:
    """An action for an old spelling of ``new_flag``: stores (or, with ``append``, appends)
    as it did, and warns."""

    class DeprecatedAlias(argparse.Action):
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: str | None = None,
        ) -> None:
            print(
                f"passage: warning: {option_string} is deprecated; use {new_flag}",
                file=sys.stderr,
            )
            if append:
                values = [*(getattr(namespace, self.dest, None) or []), values]
            setattr(namespace, self.dest, values)

    return DeprecatedAlias


def env_value(name: str, environ: Mapping[str, str]) -> str | None:
    """``environ[name]``, else the value of an old name for it (with a warning); None."""
    value = environ.get(name)
    if value:
        return value
    for old, new in ENV_ALIASES.items():
        if new == name and environ.get(old):
            print(f"passage: warning: {old} is deprecated; use {new}", file=sys.stderr)
            return environ[old]
    return None


def misspelled_variables(environ: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """A warning for each ``PASSAGE_*`` variable that is not one we read but is close to one."""
    import difflib

    names = sorted(set(known) | set(ENV_ALIASES))
    warnings = []
    for variable in sorted(environ):
        if not variable.startswith("PASSAGE_") or variable in names:
            continue
        close = difflib.get_close_matches(variable, names, n=1, cutoff=0.85)
        if close:
            warnings.append(
                f"passage: warning: {variable} is not a Passage variable and is ignored "
                f"(did you mean {close[0]}?)"
            )
    return warnings
