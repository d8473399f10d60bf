"""This host's addresses: its primary IP per family, what ``passage serve`` binds and advertises.

:func:`primary_ip` asks the routing table (a connected UDP socket, nothing
sent). :func:`relay_addresses` and :func:`advertised_endpoint` read the
configuration and the host to say which IPs relay sockets bind and which host
and ports clients are told (:mod:`passage.endpoint`); the app binds by them,
and the CLI names the same node the server would.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
from pathlib import Path

from passage.addresses import AddressFamily, family_of
from passage.config import Config
from passage.endpoint import AdvertisedEndpoint, RelayAddresses, advertised_host
from passage.turn.own_addresses import OwnAddresses

_PROBE = {AddressFamily.IPV4: "192.0.2.1", AddressFamily.IPV6: "2001:db8::1"}
"""Documentation addresses used only to ask the routing table for a source IP:
connecting a UDP socket sends nothing."""


def primary_ip(family: AddressFamily) -> str | None:
    """The source address the host would use for the internet, if it has a route."""
    sock_family = socket.AF_INET6 if family == AddressFamily.IPV6 else socket.AF_INET
    with socket.socket(sock_family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((_PROBE[family], 9))
        except OSError:
            return None
        return str(probe.getsockname()[0])


def relay_addresses(config: Config) -> RelayAddresses:
    """Relay bind IPs per family: ``--relay-ip``, else the specific listen IPs, else the host's.

    A wildcard listen IP (``0.0.0.0``/``::``) relays from the host's primary
    address of that family, or loopback when the host has no route at all.
    ``--public-ip`` replaces the advertised address of its family (1:1 NAT).
    """
    bind: dict[int, str] = {}
    for ip in config.relay_ips:
        bind.setdefault(family_of(ip), ip)
    if not bind:
        for ip in config.listen_ips:
            family = family_of(ip)
            if family in bind:
                continue
            if not ipaddress.ip_address(ip).is_unspecified:
                bind[family] = ip
            else:
                found = primary_ip(family)
                if found is not None:
                    bind[family] = found
                elif family == AddressFamily.IPV4:
                    bind[family] = "127.0.0.1"
    advertised = dict(bind)
    if config.public_ip is not None:
        advertised[family_of(config.public_ip)] = config.public_ip
    return RelayAddresses(bind=bind, advertised=advertised, port_range=config.relay_ports)


def advertised_endpoint(config: Config, relays: RelayAddresses | None = None) -> AdvertisedEndpoint:
    """This node as ``passage serve`` with ``config`` advertises it (``relays``: as bound)."""
    relays = relays if relays is not None else relay_addresses(config)
    return AdvertisedEndpoint(
        host=advertised_host(config.public_host, config.public_ip, relays),
        turn_port=config.turn_port,
        tls_ports=config.tls_ports,
        api_port=config.api_port,
        http_port=config.http_port,
    )


_FIB_TRIE = Path("/proc/net/fib_trie")
_IF_INET6 = Path("/proc/net/if_inet6")


def local_addresses() -> frozenset[str]:
    """Every address assigned to this host's interfaces (in this network namespace).

    Read from Linux's ``/proc/net/fib_trie`` (IPv4 ``/32 host LOCAL`` entries,
    secondary addresses included) and ``/proc/net/if_inet6``; elsewhere, what
    the host name resolves to plus the primary addresses. Never raises: an
    unreadable source contributes nothing.
    """
    found: set[str] = set()
    try:
        lines = _FIB_TRIE.read_text().splitlines()
    except OSError:
        lines = []
    for previous, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL" and "|-- " in previous:
            found.add(previous.split("|-- ", 1)[1].strip())
    try:
        for line in _IF_INET6.read_text().splitlines():
            fields = line.split()
            if fields and len(fields[0]) == 32:
                found.add(str(ipaddress.IPv6Address(int(fields[0], 16))))
    except (OSError, ValueError):
        pass
    if not found:
        found |= _resolved_addresses()
    return frozenset(found)


def _resolved_addresses() -> set[str]:
    found: set[str] = set()
    try:
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(sockaddr[0]))
    except OSError:
        pass
    for family in (AddressFamily.IPV4, AddressFamily.IPV6):
        primary = primary_ip(family)
        if primary is not None:
            found.add(primary)
    return found


def own_addresses(config: Config, relays: RelayAddresses) -> OwnAddresses:
    """This server's listeners and relay sockets, for the TURN peer policy.

    Listeners are refused as peers on every address of the host (a wildcard
    listener answers on all of them, and a specific one may be reached through
    another), so the host's interfaces are read again each time this is called.
    """
    ports = [config.turn_port, *config.tls_ports, config.api_port, config.http_port]
    if config.alt_ip is not None:
        ports.append(config.alternate_port)
    hosts = [*config.listen_ips, *local_addresses()]
    hosts += [ip for ip in (config.alt_ip, config.public_ip) if ip is not None]
    return OwnAddresses.build(
        host_ips=hosts,
        listener_ports=ports,
        relay_ips=[*relays.bind.values(), *relays.advertised.values()],
        relay_ports=config.relay_ports,
    )
