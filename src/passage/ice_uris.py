"""ICE server URIs, both ways: ``stun:``/``stuns:`` (RFC 7064) and ``turn:``/``turns:`` (RFC 7065).

::

    stunURI = ("stun" / "stuns") ":" host [ ":" port ]
    turnURI = ("turn" / "turns") ":" host [ ":" port ] [ "?transport=" transport ]

``host`` is RFC 3986's: an IPv6 literal in brackets, an IPv4 address or a
name. Without a port, ``stun:`` and ``turn:`` mean 3478, ``stuns:`` and
``turns:`` 5349 (RFC 7064 §3.2, RFC 7065 §3). Without a transport, ``turn:``
means UDP and ``turns:`` TCP, that is TLS (RFC 7065 §3). TURN over DTLS
(``turns:`` with ``transport=udp``, RFC 7350) is neither served nor spoken by
Passage, so :func:`parse_ice_uri` treats it as not one of ours.

Relay configurations (the identity service), the startup banner, the peer
SDK and ``passage doctor`` all write and read them here. A leaf: no I/O.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from passage.addresses import Transport, bracketed

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_SECURE_PORT",
    "IceScheme",
    "IceUri",
    "parse_ice_uri",
    "relay_uris",
]

DEFAULT_PORT = 3478
"""``stun:`` and ``turn:`` without a port (RFC 8489 §18.5, RFC 8656 §18)."""

DEFAULT_SECURE_PORT = 5349
"""``stuns:`` and ``turns:`` without a port."""


class IceScheme(enum.StrEnum):
    STUN = "stun"
    STUNS = "stuns"
    TURN = "turn"
    TURNS = "turns"

    @property
    def secure(self) -> bool:
        """Over TLS (``stuns:``, ``turns:``)."""
        return self in (IceScheme.STUNS, IceScheme.TURNS)


_URI = re.compile(
    r"(?P<scheme>stuns?|turns?):"
    r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9\-._~%!$&'()*+,;=]+))"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>[A-Za-z]+))?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class IceUri:
    """One ICE server URI; ``str()`` writes it as RFC 7064/7065 spell it, port always given."""

    scheme: IceScheme
    host: str
    """A name or an IP address, without brackets."""
    port: int
    transport: Transport | None = None
    """How a TURN client reaches the server: UDP or TCP for ``turn:``, TLS (over TCP)
    for ``turns:``; None for ``stun:`` and ``stuns:``."""

    @classmethod
    def stun(cls, host: str, port: int = DEFAULT_PORT) -> IceUri:
        return cls(IceScheme.STUN, host, port)

    @classmethod
    def turn(cls, host: str, port: int, transport: Transport) -> IceUri:
        """``turn:`` over UDP or TCP, ``turns:`` for TLS."""
        scheme = IceScheme.TURNS if transport is Transport.TLS else IceScheme.TURN
        return cls(scheme, host, port, transport)

    def __str__(self) -> str:
        text = f"{self.scheme}:{bracketed(self.host)}:{self.port}"
        if self.transport is None:
            return text
        return text + f"?transport={'tcp' if self.transport is Transport.TLS else self.transport}"


def parse_ice_uri(text: str) -> IceUri | None:
    """The ICE server ``text`` names; None if it is not a ``stun:``, ``stuns:``, ``turn:`` or
    ``turns:`` URI Passage speaks (a bad host or port, a query on a STUN URI, a transport
    other than UDP or TCP, TURN over DTLS)."""
    found = _URI.fullmatch(text.strip())
    if found is None:
        return None
    scheme = IceScheme(found["scheme"].lower())
    host = found["ipv6"] or found["host"]
    if found["ipv6"] is not None and not _is_ipv6(found["ipv6"]):
        return None
    port = int(found["port"]) if found["port"] else _default_port(scheme)
    if not 0 < port < 65536:
        return None
    wanted = found["transport"]
    if scheme in (IceScheme.STUN, IceScheme.STUNS):
        return IceUri(scheme, host, port) if wanted is None else None
    transport = _TRANSPORTS.get((scheme, (wanted or _DEFAULT_TRANSPORT[scheme]).lower()))
    return IceUri(scheme, host, port, transport) if transport is not None else None


def relay_uris(host: str, turn_port: int, tls_ports: Iterable[int]) -> list[IceUri]:
    """What a Passage relay at ``host`` offers, in the order clients should try it:
    STUN, TURN over UDP, over TCP, then over TLS on each of ``tls_ports``."""
    uris = [
        IceUri.stun(host, turn_port),
        IceUri.turn(host, turn_port, Transport.UDP),
        IceUri.turn(host, turn_port, Transport.TCP),
    ]
    return uris + [IceUri.turn(host, port, Transport.TLS) for port in tls_ports]


_DEFAULT_TRANSPORT = {IceScheme.TURN: "udp", IceScheme.TURNS: "tcp"}
_TRANSPORTS = {
    (IceScheme.TURN, "udp"): Transport.UDP,
    (IceScheme.TURN, "tcp"): Transport.TCP,
    (IceScheme.TURNS, "tcp"): Transport.TLS,
}
"""(scheme, ``transport=``) → how a client reaches the server; ``turns`` over UDP (DTLS)
is not listed."""


def _default_port(scheme: IceScheme) -> int:
    return DEFAULT_SECURE_PORT if scheme.secure else DEFAULT_PORT


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
