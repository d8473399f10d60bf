"""The ICE servers a relay configuration lists: which relays, for which route type.

ACS answers ``issueRelayConfiguration`` with one ICE server entry per route
type, ``any`` and ``nearest``, or only the one asked for. Passage's relays are
grouped by region: this node serves :attr:`RelayTopology.region`, and the
configuration may name relays of other regions and map client address ranges
to regions. ``nearest`` lists the relays of the caller's region (by the
longest matching range; this node's region when none matches); ``any`` lists
every relay. Every relay host gets the same URL set: STUN, TURN over UDP and
TCP, and TURN over TLS on each TLS port configured (``turns_port``, then
``turns_extra_ports``).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from passage.ice_uris import relay_uris
from passage.identity.errors import ValidationError

__all__ = [
    "ClusterRelay",
    "IceServer",
    "RelayTopology",
    "RouteType",
    "ice_servers",
    "parse_route_type",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RouteType(enum.StrEnum):
    ANY = "any"
    NEAREST = "nearest"


def parse_route_type(value: object) -> RouteType | None:
    """``routeType`` from a request: absent/null → None (both), else ``any`` or ``nearest``."""
    if value is None:
        return None
    for route in RouteType:
        if isinstance(value, str) and value.lower() == route.value:
            return route
    raise ValidationError(
        f"RouteType value {value!r} is invalid. Valid values: any, nearest.", "RouteType"
    )


@dataclass(frozen=True, slots=True)
class ClusterRelay:
    """A live node of the cluster that takes new allocations (cluster mode)."""

    region: str
    host: str
    turn_port: int
    turns_port: int
    """0 when TURN over TLS is off on that node."""


@dataclass(frozen=True, slots=True)
class RelayTopology:
    region: str
    """The region this node serves."""

    own_hosts: tuple[str, ...]
    """Host names or IPs under which this node's relays are reached."""

    other_relays: tuple[tuple[str, str], ...]
    """(region, host) of relays elsewhere; they share this node's ports and keys."""

    client_regions: tuple[tuple[Network, str], ...]
    """(client range, region) for ``nearest``."""

    turn_port: int
    turns_port: int
    """0 when TURN over TLS is off."""

    turns_extra_ports: tuple[int, ...] = ()
    """More TURN-over-TLS ports (443 for clients behind strict firewalls), listed after it."""

    cluster: tuple[ClusterRelay, ...] = ()
    """Cluster mode: the nodes to hand out, least loaded first, in place of this node
    alone; empty: this node (alone, or its cluster's registry is unreachable)."""

    def region_of(self, client_ip: str | None) -> str:
        """The region whose range most specifically contains ``client_ip``; ours by default."""
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            return self.region
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # an IPv4 client on a dual-stack socket
        matches = [(net.prefixlen, region) for net, region in self.client_regions if address in net]
        return max(matches)[1] if matches else self.region

    def hosts(self, region: str | None) -> tuple[str, ...]:
        """Relay hosts of ``region`` (every host for None); ours if the region has none."""
        hosts = [host for r, host in self.other_relays if region is None or r == region]
        if self.cluster:
            nodes = [node.host for node in self.cluster if region is None or node.region == region]
            if nodes:
                return tuple(dict.fromkeys([*nodes, *hosts]))
        if region is None or region == self.region:
            hosts = [*self.own_hosts, *hosts]
        return tuple(dict.fromkeys(hosts)) or self.own_hosts

    def urls(self, hosts: Sequence[str]) -> list[str]:
        """Every relay URI of every host in ``hosts`` (:func:`passage.ice_uris.relay_uris`)."""
        nodes = {node.host: node for node in self.cluster}
        urls = []
        for host in hosts:
            node = nodes.get(host)
            turn_port, turns_port = (
                (node.turn_port, node.turns_port) if node else (self.turn_port, self.turns_port)
            )
            tls_ports = ((turns_port,) if turns_port else ()) + self.turns_extra_ports
            urls += [str(uri) for uri in relay_uris(host, turn_port, tls_ports)]
        return urls


@dataclass(frozen=True, slots=True)
class IceServer:
    route_type: RouteType
    urls: tuple[str, ...]


def ice_servers(
    topology: RelayTopology, route_type: RouteType | None, client_ip: str | None
) -> list[IceServer]:
    """The entries to return, ``any`` before ``nearest`` when both are asked for."""
    wanted = [route_type] if route_type is not None else [RouteType.ANY, RouteType.NEAREST]
    servers = []
    for route in wanted:
        region = None if route is RouteType.ANY else topology.region_of(client_ip)
        servers.append(IceServer(route, tuple(topology.urls(topology.hosts(region)))))
    return servers
