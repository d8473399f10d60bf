"""Transport addresses as every layer speaks of them: families, brackets, ``host:port``, transports.

An :data:`Address` is an ``(ip, port)`` pair. Its family is STUN's family
byte (RFC 8489 §14.1: 0x01 IPv4, 0x02 IPv6), which the TURN core also uses
to key relay sockets. Wherever a host meets a port in text, an IPv6 literal
goes in brackets (RFC 3986 §3.2.2): :func:`bracketed`, :func:`format_address`
and :func:`parse_host_port` are the only places that know it. A
:class:`Transport` is how a client reaches a STUN/TURN server.

A leaf: it imports nothing of ours and does no I/O.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

__all__ = [
    "Address",
    "AddressFamily",
    "Transport",
    "bracketed",
    "family_of",
    "format_address",
    "parse_host_port",
]

Address: TypeAlias = tuple[str, int]
"""(IP address string, port); IPv6 in compressed form, e.g. ``("2001:db8::1", 3478)``."""


class AddressFamily(enum.IntEnum):
    """The family byte of STUN's (XOR-)address attributes and REQUESTED-ADDRESS-FAMILY."""

    IPV4 = 0x01
    IPV6 = 0x02


class Transport(enum.StrEnum):
    """How a client reaches a STUN/TURN server (RFC 8656 §3.1); TLS runs over TCP."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


def family_of(ip: str) -> AddressFamily:
    """The family of an IP literal: IPv6 if it has a colon (it is not validated here)."""
    return AddressFamily.IPV6 if ":" in ip else AddressFamily.IPV4


def bracketed(host: str) -> str:
    """``host`` as it stands before ``:port`` or in a URL: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host else host


def format_address(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    """``ip:port``, an IPv6 host in brackets so the port stays readable (a socket's IPv6
    name has four parts; the last two are left out)."""
    return f"{bracketed(address[0])}:{address[1]}"


def parse_host_port(text: str, default_port: int | None = None) -> Address:
    """``HOST:PORT`` or ``[IPv6]:PORT`` (``HOST`` alone too, given ``default_port``).

    Raises :class:`ValueError` saying what is wrong (the caller names the text):
    an empty host, a port that is not 0-65535, or an IPv6 literal without its
    brackets (``::1:80`` could be ``::1`` port 80, or ``::1:80`` with none).
    """
    stripped = text.strip()
    if stripped.startswith("["):
        host, bracket, rest = stripped[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 literal is written [ADDRESS]:PORT")
        port_text: str | None = rest[1:] if rest else None
    elif stripped.count(":") > 1:
        raise ValueError("an IPv6 literal is written [ADDRESS]:PORT")
    else:
        host, colon, after = stripped.partition(":")
        port_text = after if colon else None
    if not host:
        raise ValueError("no host")
    if port_text is None:
        if default_port is None:
            raise ValueError("no port")
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError("the port is not a number from 0 to 65535")
    return host, int(port_text)
