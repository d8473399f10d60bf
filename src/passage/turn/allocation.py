"""One allocation's state: relayed addresses, permissions, channel bindings, meters.

The core owns every allocation. The adapters read two of its dictionaries on
the hot path without calling into the core:

- ``routes``: channel number → (relay socket, peer address), for ChannelData
  from the client;
- ``channel_by_peer``: peer address → the two channel-number bytes, for data
  arriving at the relay that goes back to the client as ChannelData.

Both hold only entries whose permission and binding are alive, so the hot
path needs no clock: expiry removes entries (``sweep``), it is not checked
per packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from passage.addresses import Address, family_of
from passage.turn.events import FiveTuple, RelayHandle

Route = tuple[RelayHandle, Address]


@dataclass(slots=True, eq=False)
class Allocation:
    """An allocation (RFC 8656 §2.2), keyed by its client's 5-tuple."""

    id: str
    five_tuple: FiveTuple
    username: str
    subject: str
    quota_key: str
    """What ``max_allocations_per_user`` counts this allocation against."""
    key: bytes = field(repr=False)
    sha256: bool
    relays: dict[int, Route]
    """Address family → (relay socket, advertised relayed address)."""
    started_at: float
    expires_at: float
    transaction_id: bytes
    response: bytes = field(repr=False)
    """The Allocate success response, resent for a retransmitted Allocate."""

    permissions: dict[str, float] = field(default_factory=dict)
    """Peer IP → expiry (RFC 8656 §9)."""
    bindings: dict[int, Address] = field(default_factory=dict)
    """Channel number → peer address (RFC 8656 §12)."""
    binding_expiry: dict[int, float] = field(default_factory=dict)

    routes: dict[int, Route] = field(default_factory=dict)
    channel_by_peer: dict[Address, bytes] = field(default_factory=dict)

    # Meters: the adapters' hot paths add to these directly.
    bytes_to_peer: int = 0
    packets_to_peer: int = 0
    bytes_from_peer: int = 0
    packets_from_peer: int = 0
    budget: int = 0
    """Bytes this allocation may still relay in the current second."""

    flushed: tuple[int, int, int, int] = (0, 0, 0, 0)
    flushed_at: float = 0.0

    peers_permitted: int = 0
    """Permissions installed that were not already there: the peer IPs this allocation
    was let talk to over its life (one that expired and came back counts twice)."""

    def relay_for(self, ip: str) -> Route | None:
        """The relay that talks to peers of ``ip``'s family, if we have one."""
        return self.relays.get(family_of(ip))

    def install_permission(self, ip: str, expires_at: float) -> None:
        """Create or refresh a permission (RFC 8656 §9); routes follow."""
        fresh = ip not in self.permissions
        self.permissions[ip] = expires_at
        if fresh:
            self.peers_permitted += 1
            self.rebuild_routes()

    def bind_channel(self, channel: int, peer: Address, expires_at: float) -> None:
        """Create or refresh a binding (RFC 8656 §12); the caller checked the rules."""
        self.bindings[channel] = peer
        self.binding_expiry[channel] = expires_at
        self.rebuild_routes()

    def sweep(self, now: float) -> None:
        """Drop permissions and bindings whose time has come."""
        expired_permissions = [ip for ip, t in self.permissions.items() if t <= now]
        expired_bindings = [ch for ch, t in self.binding_expiry.items() if t <= now]
        for ip in expired_permissions:
            del self.permissions[ip]
        for channel in expired_bindings:
            del self.bindings[channel]
            del self.binding_expiry[channel]
        if expired_permissions or expired_bindings:
            self.rebuild_routes()

    def rebuild_routes(self) -> None:
        """Recompute the hot-path tables from bindings and permissions, in place."""
        self.routes.clear()
        self.channel_by_peer.clear()
        for channel, peer in self.bindings.items():
            route = self.relay_for(peer[0])
            if route is None or peer[0] not in self.permissions:
                continue
            self.routes[channel] = (route[0], peer)
            self.channel_by_peer[peer] = channel.to_bytes(2, "big")

    def release_family(self, family: int) -> Route | None:
        """Forget one relay of a dual allocation (Refresh with lifetime 0 and a family)."""
        route = self.relays.pop(family, None)
        self.rebuild_routes()
        return route

    def unflushed(self) -> tuple[int, int, int, int]:
        """Deltas since the last flush: to peer (bytes, packets), from peer (bytes, packets)."""
        b2p, p2p, bfp, pfp = self.flushed
        return (
            self.bytes_to_peer - b2p,
            self.packets_to_peer - p2p,
            self.bytes_from_peer - bfp,
            self.packets_from_peer - pfp,
        )

    def mark_flushed(self, now: float) -> None:
        self.flushed = (
            self.bytes_to_peer,
            self.packets_to_peer,
            self.bytes_from_peer,
            self.packets_from_peer,
        )
        self.flushed_at = now


@dataclass(slots=True, eq=False)
class Reservation:
    """A port kept by EVEN-PORT(R) for a later Allocate with RESERVATION-TOKEN (RFC 8656 §14.9)."""

    route: Route
    family: int
    expires_at: float
    quota_key: str
    """The maker's quota key: the kept port counts against it until taken or expired."""
