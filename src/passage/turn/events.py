"""What crosses the boundary between the TURN core and its asyncio adapters.

The core never touches a socket. It answers every input with a list of
*actions* for the adapter to carry out, in order. Relay sockets are opaque
handles the adapter created; the core stores them so that the adapter's hot
path (ChannelData in both directions) is a dictionary look-up and a send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from passage.addresses import Address, Transport, format_address

if TYPE_CHECKING:
    from passage.turn.allocation import Allocation


class FiveTuple(NamedTuple):
    """A client's transport, its address, and the server address it reached (RFC 8656 §2)."""

    transport: Transport
    client: Address
    server: Address

    def describe(self) -> str:
        """The client side for a log line: ``udp 192.0.2.7:4000`` or ``tcp [2001:db8::7]:4000``."""
        return f"{self.transport.value} {format_address(self.client)}"


class RelayHandle(Protocol):
    """A bound relay socket, owned by the adapter. The core never calls it."""

    def sendto(self, data: bytes, addr: Address, /) -> None: ...


@dataclass(frozen=True, slots=True)
class SendToClient:
    """Transmit ``data`` (a STUN message or ChannelData) to the client of ``five_tuple``.

    For UDP, ``five_tuple.server`` is the local transport address to send from
    and ``five_tuple.client`` the destination. They are the request's own
    except for RFC 5780 Binding answers, which may leave from another of the
    server's listeners (CHANGE-REQUEST) or go to another port (RESPONSE-PORT).
    For TCP and TLS, ``five_tuple`` names the connection.
    """

    five_tuple: FiveTuple
    data: bytes


@dataclass(frozen=True, slots=True)
class SendToPeer:
    """Transmit ``data`` (a Send indication's payload) from relay socket ``relay`` to ``peer``."""

    relay: RelayHandle
    peer: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class BindRelay:
    """Bind relay sockets for a pending Allocate; answer with ``relay_bound``/``relay_bind_failed``.

    ``families`` lists the address families (1 = IPv4, 2 = IPv6), one socket
    each. ``even_port`` asks for an even port; ``reserve_next`` also reserves
    port + 1 (RFC 8656 §14.6). ``dont_fragment`` sets the DF bit on what the
    relay sends (RFC 8656 §14.8). ``quota_key`` and ``units`` say whose allocation
    quota it counts against and how many units it takes (2 when a port is kept), for
    an adapter that must admit it elsewhere first (``relay_quota_refused``).
    """

    five_tuple: FiveTuple
    families: tuple[int, ...]
    even_port: bool
    reserve_next: bool
    dont_fragment: bool
    quota_key: str = ""
    units: int = 1


@dataclass(frozen=True, slots=True)
class FindReservation:
    """A RESERVATION-TOKEN that names another process's kept port (``passage serve
    --workers N``): fetch that port's socket; answer with ``reservation_found`` or
    ``reservation_missing`` (RFC 8656 §7.2 step 5)."""

    five_tuple: FiveTuple
    token: bytes


@dataclass(frozen=True, slots=True)
class ReleaseRelay:
    """Close a relay socket: its allocation or reservation is gone."""

    relay: RelayHandle


@dataclass(frozen=True, slots=True)
class AllocationStarted:
    """An allocation now exists; the adapter routes its 5-tuple's ChannelData to it."""

    allocation: Allocation


@dataclass(frozen=True, slots=True)
class AllocationEnded:
    """An allocation is gone (``reason`` says why); its relays are released separately."""

    allocation: Allocation
    reason: str


Action = (
    SendToClient | SendToPeer | BindRelay | FindReservation | ReleaseRelay
    | AllocationStarted | AllocationEnded
)  # fmt: skip
