"""Where a client's SAS tokens come from: a rule's key (renewable) or a ready token.

A listener keeps its control channel only while its token is valid, so one
built from a key sends ``renewToken`` with a fresh token before the old one
expires (reference §2.3); a ready token cannot be renewed, and the listener
reconnects when the relay closes it with 1008.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from passage.hybrid.endpoint import RelayConnectionString
from passage.hybrid.sas import make_sas_token

__all__ = ["KeyTokenProvider", "StaticTokenProvider", "TokenProvider", "token_provider"]

DEFAULT_TTL = 3600
"""Seconds a minted token is valid (what hyco's createRelayToken uses)."""


class TokenProvider(Protocol):
    @property
    def renew_every(self) -> float | None:
        """Seconds between renewals of a listener's token; None: it cannot be renewed."""
        ...

    def token(self, resource_uri: str) -> str:
        """A ``SharedAccessSignature ...`` for ``resource_uri`` (``http://HOST:PORT/NAME``)."""
        ...


@dataclass(frozen=True, slots=True)
class KeyTokenProvider:
    """Mints tokens signed with an authorization rule's key, valid ``ttl`` seconds."""

    rule_name: str
    key: str = field(repr=False)
    ttl: int = DEFAULT_TTL
    clock: Callable[[], float] = time.time

    @property
    def renew_every(self) -> float:
        # Well before expiry: a renewal lost to a reconnect still has time to retry.
        return self.ttl * 0.75

    def token(self, resource_uri: str) -> str:
        return make_sas_token(resource_uri, self.rule_name, self.key, int(self.clock()) + self.ttl)


@dataclass(frozen=True, slots=True)
class StaticTokenProvider:
    """One ready token, used as is."""

    text: str = field(repr=False)

    @property
    def renew_every(self) -> None:
        return None

    def token(self, resource_uri: str) -> str:
        return self.text


def token_provider(
    connection_string: RelayConnectionString, ttl: int = DEFAULT_TTL
) -> TokenProvider:
    """The key in ``connection_string`` if it has one, else its ready signature."""
    if connection_string.key_name and connection_string.key:
        return KeyTokenProvider(connection_string.key_name, connection_string.key, ttl)
    assert connection_string.signature is not None  # parse() requires one or the other
    return StaticTokenProvider(connection_string.signature)
