"""Hybrid connections and their authorization rules: the namespace a relay serves.

A hybrid connection's name may contain ``/`` (1–260 characters of letters,
digits, ``.``, ``-``, ``_`` and ``/``, starting and ending with a letter or
digit), so a request path is resolved to the *longest registered name that is
a whole-segment prefix of it*; the rest is the suffix the listener sees.
Names compare case-insensitively, as in Azure.

Rules live on the namespace (valid for every hybrid connection) or on one
hybrid connection; a token names its rule with ``skn``, looked up on the
entity first, then on the namespace. ``RootManageSharedAccessKey`` (Manage,
so Listen and Send too) exists from the first start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NewType

from passage.hybrid.sas import Rights, SasRule

__all__ = [
    "MAX_RULES",
    "ROOT_RULE",
    "HybridConnection",
    "HybridConnectionPath",
    "Namespace",
    "Resolved",
    "validate_name",
    "validate_rule_name",
]

HybridConnectionPath = NewType("HybridConnectionPath", str)
"""A registered hybrid connection name, in its canonical (lower-case) form."""

ROOT_RULE = "RootManageSharedAccessKey"
MAX_RULES = 12
"""Authorization rules per namespace or hybrid connection, as Azure allows."""

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,258}[A-Za-z0-9])?")
_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}")


def validate_name(name: str) -> HybridConnectionPath:
    """The canonical form of a hybrid connection name; :class:`ValueError` says what is wrong."""
    if not _NAME.fullmatch(name) or "//" in name:
        raise ValueError(
            f"hybrid connection name {name!r}: 1-260 letters, digits, '.', '-', '_' or '/', "
            "starting and ending with a letter or digit, no empty segment"
        )
    return HybridConnectionPath(name.lower())


def validate_rule_name(name: str) -> str:
    if not _RULE_NAME.fullmatch(name):
        raise ValueError(f"rule name {name!r}: letters, digits, '.', '-', '_', at most 256")
    return name


@dataclass(frozen=True, slots=True)
class HybridConnection:
    path: HybridConnectionPath
    """The canonical name; the one URLs resolve to."""

    name: str
    """The name as it was created, for display."""

    requires_client_authorization: bool = True
    """False: senders may connect without a token (listeners always need Listen)."""

    rules: Mapping[str, SasRule] = field(default_factory=dict)
    """Rules on this hybrid connection, by name."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A request path resolved to a hybrid connection."""

    connection: HybridConnection
    suffix: str
    """What followed the name, with its leading ``/`` (``""`` when nothing did)."""


@dataclass(frozen=True, slots=True)
class Namespace:
    """Every hybrid connection and namespace rule, as one immutable snapshot."""

    connections: Mapping[HybridConnectionPath, HybridConnection] = field(default_factory=dict)
    rules: Mapping[str, SasRule] = field(default_factory=dict)
    """Namespace-level rules, by name."""

    def resolve(self, path: str) -> Resolved | None:
        """The hybrid connection ``path`` (``a/b/c``, no leading ``/``) names, if any."""
        segments = path.strip("/").split("/")
        for end in range(len(segments), 0, -1):
            candidate = HybridConnectionPath("/".join(segments[:end]).lower())
            found = self.connections.get(candidate)
            if found is not None:
                rest = "/".join(segments[end:])
                return Resolved(found, "/" + rest if rest else "")
        return None

    def rules_for(self, connection: HybridConnection) -> dict[str, SasRule]:
        """The rules a token for ``connection`` may name: its own, then the namespace's."""
        return {**self.rules, **connection.rules}


def root_rule(primary_key: str, secondary_key: str) -> SasRule:
    return SasRule(ROOT_RULE, Rights.MANAGE, primary_key, secondary_key)
