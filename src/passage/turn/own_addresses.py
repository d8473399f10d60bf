"""The server's own transport addresses, as seen from a relay socket.

A relay socket sits on the server's host, so a peer address can name the
server itself: its STUN/TURN, TLS, API or HTTP listeners on any of the host's
addresses (loopback and the unspecified address included: Linux delivers
``0.0.0.0`` and ``::`` locally). Relaying there is TURN-in-TURN: the server
answers itself, and its ledger and per-IP limits see its own relay address as
a client. :class:`OwnAddresses` knows those listeners, and the relay sockets'
own addresses, which stay reachable (two allocations on one server relay to
each other, as WebRTC needs) even when the deny list covers their range: the
server's own relay addresses are never "private" to itself.

The adapter builds one from its configuration and the host's interfaces
(``passage.hostaddr.local_addresses``) and hands it to the core; the peer
policy asks :meth:`OwnAddresses.is_listener` and :meth:`OwnAddresses.is_relay`.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

_MAX_TEXT = 64
"""Longer text is never an address (see ``peers._MAX_TEXT``)."""


def canonical_ip(text: object) -> str | None:
    """``text`` as one spelling per address: IPv4-mapped and -translated IPv6 unwrapped.

    ``None`` for anything that is not an IP address (or not text). Cached, bounded.
    """
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        return None
    return _canonical(text)


@functools.lru_cache(maxsize=4096)
def _canonical(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None
        packed = int(address)
        if packed >> 32 in (0xFFFF, 0xFFFF_0000):  # ::ffff:a.b.c.d, ::ffff:0:a.b.c.d
            return str(ipaddress.IPv4Address(packed & 0xFFFF_FFFF))
    return str(address)


def _reaches_this_host(ip: str) -> bool:
    """Loopback and unspecified addresses always land on this host, whatever it has."""
    address = ipaddress.ip_address(ip)
    return address.is_loopback or address.is_unspecified


@dataclass(frozen=True, slots=True)
class OwnAddresses:
    """This server's listeners and relay sockets, by address."""

    host_ips: frozenset[str] = frozenset()
    """Every address of this host (canonical text): interfaces, listen, relay and public IPs."""

    listener_ports: frozenset[int] = frozenset()
    """Ports our listeners are bound to: STUN/TURN, alternate, TLS, API, HTTP."""

    relay_ips: frozenset[str] = frozenset()
    """Addresses relay sockets bind or are advertised at (canonical text)."""

    relay_ports: tuple[int, int] = (1, 0)
    """The relay port range, inclusive; the default is empty."""

    @classmethod
    def build(
        cls,
        *,
        host_ips: Iterable[str],
        listener_ports: Iterable[int],
        relay_ips: Iterable[str],
        relay_ports: tuple[int, int],
    ) -> OwnAddresses:
        """Canonicalise the addresses; relay IPs count as host IPs too."""
        relays = frozenset(filter(None, map(canonical_ip, relay_ips)))
        hosts = frozenset(filter(None, map(canonical_ip, host_ips))) | relays
        return cls(hosts, frozenset(p for p in listener_ports if p), relays, relay_ports)

    def is_listener(self, ip: str, port: int) -> bool:
        """True if ``(ip, port)`` reaches one of our listeners."""
        if port not in self.listener_ports:
            return False
        canonical = canonical_ip(ip)
        if canonical is None:
            return False
        return canonical in self.host_ips or _reaches_this_host(canonical)

    def is_relay(self, ip: str) -> bool:
        """True if ``ip`` is the address of our relay sockets."""
        if not self.relay_ips:
            return False
        canonical = canonical_ip(ip)
        return canonical is not None and canonical in self.relay_ips

    def is_relay_port(self, port: int) -> bool:
        low, high = self.relay_ports
        return low <= port <= high
