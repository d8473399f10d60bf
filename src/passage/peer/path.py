"""The path ICE chose, in the words Passage promises: ``direct-lan`` ... ``relay-tls``.

Each side of the nominated pair is an :class:`Endpoint`: its candidate type,
its address, and, for a relayed candidate, how that side reaches its TURN
server. The path is named by its most constrained leg, so both peers name
the same path:

=================  ===================================================
``direct-lan``     host to host: the two are on one network
``direct-nat``     direct, through at least one NAT (a server- or
                   peer-reflexive address on one side)
``relay-udp``      through a TURN relay, every relayed leg over UDP
``relay-tcp``      a relayed leg over TCP to the TURN server
``relay-tls``      a relayed leg over TLS (``turns:``), e.g. on port 443
=================  ===================================================

:attr:`Path.both_relay` says whether each side relays (relay to relay).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from passage.addresses import Transport

__all__ = ["Endpoint", "Path", "PathKind", "classify"]


class PathKind(enum.StrEnum):
    DIRECT_LAN = "direct-lan"
    DIRECT_NAT = "direct-nat"
    RELAY_UDP = "relay-udp"
    RELAY_TCP = "relay-tcp"
    RELAY_TLS = "relay-tls"

    @property
    def relayed(self) -> bool:
        return self in _RELAY_KINDS.values()


_RELAY_KINDS = {
    Transport.UDP: PathKind.RELAY_UDP,
    Transport.TCP: PathKind.RELAY_TCP,
    Transport.TLS: PathKind.RELAY_TLS,
}
_CONSTRAINT = {Transport.UDP: 0, Transport.TCP: 1, Transport.TLS: 2}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of the nominated candidate pair."""

    type: str
    """``host``, ``srflx``, ``prflx`` or ``relay`` (RFC 8445 §5.1.1)."""
    address: tuple[str, int]
    relay: Transport | None = None
    """For a relayed candidate: how its side reaches the TURN server."""
    server: tuple[str, int] | None = None
    """For a relayed candidate: the TURN server, when known (our own side)."""

    def __str__(self) -> str:
        host, port = self.address
        shown = f"{self.type} {host}:{port}"
        if self.relay is not None:
            shown += f" via TURN over {self.relay}"
            if self.server is not None:
                shown += f" to {self.server[0]}:{self.server[1]}"
        return shown


@dataclass(frozen=True, slots=True)
class Path:
    kind: PathKind
    local: Endpoint
    remote: Endpoint

    @property
    def both_relay(self) -> bool:
        """Each side sends through its own TURN allocation."""
        return self.local.type == "relay" and self.remote.type == "relay"

    def __str__(self) -> str:
        both = ", both sides relay" if self.both_relay else ""
        return f"{self.kind} ({self.local} <-> {self.remote}{both})"


def classify(local: Endpoint, remote: Endpoint) -> Path:
    """Name the path between the two ends of the nominated pair."""
    # A relayed candidate whose transport the peer did not say counts as UDP, the least.
    relays = [end.relay or Transport.UDP for end in (local, remote) if end.type == "relay"]
    if relays:
        kind = _RELAY_KINDS[max(relays, key=_CONSTRAINT.__getitem__)]
    elif local.type == "host" and remote.type == "host":
        kind = PathKind.DIRECT_LAN
    else:
        kind = PathKind.DIRECT_NAT
    return Path(kind, local, remote)
