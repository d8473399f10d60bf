"""Relay sockets: bind them in the configured port range, and carry peer data to clients.

A relay socket belongs to one allocation. What a peer sends it goes back to
the client as ChannelData when the peer has a channel, as a Data indication
when it only has a permission, and nowhere otherwise (RFC 8656 §10.3, §12.6).
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
from collections.abc import Callable
from struct import Struct
from typing import TYPE_CHECKING, Any, cast

from passage.addresses import Address, AddressFamily
from passage.endpoint import RelayAddresses
from passage.turn.allocation import Route
from passage.turn.errors import DropReason

if TYPE_CHECKING:
    from passage.turn.aio.fast_path import FastChannels
    from passage.turn.allocation import Allocation
    from passage.turn.server import TurnServer

_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)
"""Linux values; typeshed does not list them."""

BIND_ATTEMPTS = 64
"""Random ports tried before a BindRelay fails with 508."""

ClientWriter = Callable[[bytes], None]

_pack_channel_header = Struct("!2sH").pack
"""(channel-number bytes, data length) → ChannelData header, in one C call."""


class RelayProtocol(asyncio.DatagramProtocol):
    """Peer → client for one relay socket. The hot path reads the allocation's tables only."""

    def __init__(self, core: TurnServer, ipv6: bool, stream: bool) -> None:
        self.core = core
        self.ipv6 = ipv6
        self.stream = stream
        """The client is on TCP/TLS: ChannelData is padded to 4 bytes (RFC 8656 §12.5)."""
        self.allocation: Allocation | None = None
        self.to_client: ClientWriter | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # Hot path: one call per datagram from a peer; no cast() here, it is a call at run time.
        allocation = self.allocation
        to_client = self.to_client
        if allocation is None or to_client is None:
            self.core.metrics.drops[DropReason.NO_ALLOCATION] += 1
            return
        peer: Address = addr[:2] if self.ipv6 else addr
        # Permission first, budget second: a stranger who learned the relayed
        # address must not be able to spend the allocation's --max-bps.
        prefix = allocation.channel_by_peer.get(peer)
        if prefix is None and peer[0] not in allocation.permissions:
            self.core.metrics.drops[DropReason.NO_PERMISSION] += 1
            return
        size = len(data)
        budget = allocation.budget - size
        allocation.budget = budget
        if budget < 0:
            self.core.metrics.drops[DropReason.BANDWIDTH_EXCEEDED] += 1
            return
        if prefix is not None:
            frame = _pack_channel_header(prefix, size) + data
            if self.stream and size & 3:
                frame += b"\x00" * (4 - (size & 3))
        else:
            frame = self.core.data_indication(peer, data)
        allocation.bytes_from_peer += size
        allocation.packets_from_peer += 1
        to_client(frame)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from peers (port unreachable) are normal; the allocation lives on.
        pass


class RelayBinder:
    """Binds relay sockets in the port range: even ports, reservations, DF, both families."""

    def __init__(self, addresses: RelayAddresses, core: TurnServer, rng: random.Random) -> None:
        self.addresses = addresses
        self.core = core
        self.rng = rng
        self.fast_path: FastChannels | None = None
        """The C router that reads the relay sockets, when ``--fast-path`` is on."""

    async def bind(
        self, family: int, *, even: bool, reserve_next: bool, dont_fragment: bool, stream: bool
    ) -> tuple[Route, Route | None]:
        """Bind one relay socket (and port + 1 when reserving). Raises OSError when full."""
        pair = self._sockets(family, even, reserve_next)
        if pair is None:
            raise OSError(errno.EADDRINUSE, "relay port range exhausted")
        sock, reserved_sock = pair
        if dont_fragment:
            _set_dont_fragment(sock, family)
        loop = asyncio.get_running_loop()
        route = await self._endpoint(loop, sock, family, stream)
        reserved = None
        if reserved_sock is not None:
            reserved = await self._endpoint(loop, reserved_sock, family, stream)
        return route, reserved

    async def adopt(self, sock: socket.socket, family: int, *, stream: bool) -> Route:
        """Relay on ``sock``, a port another process kept and passed here (a
        RESERVATION-TOKEN minted by another worker)."""
        return await self._endpoint(asyncio.get_running_loop(), sock, family, stream)

    def _sockets(
        self, family: int, even: bool, reserve_next: bool
    ) -> tuple[socket.socket, socket.socket | None] | None:
        """A bound socket (and the next port's, when reserving), or None when the range is full."""
        low, high = self.addresses.port_range
        ip = self.addresses.bind[family]
        sock_family = socket.AF_INET6 if family == AddressFamily.IPV6 else socket.AF_INET
        first_port = low + (low % 2 if even else 0)
        last_port = high - 1 if reserve_next else high
        if first_port > last_port:
            return None
        for _ in range(BIND_ATTEMPTS):
            port = self.rng.randrange(first_port, last_port + 1, 2 if even else 1)
            first = _try_bind(sock_family, ip, port)
            if first is None:
                continue
            if not reserve_next:
                return first, None
            second = _try_bind(sock_family, ip, port + 1)
            if second is not None:
                return first, second
            first.close()
        return None

    async def _endpoint(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, family: int, stream: bool
    ) -> Route:
        core = self.core
        ipv6 = family == AddressFamily.IPV6
        transport: asyncio.DatagramTransport
        if self.fast_path is not None:
            transport = self.fast_path.endpoint(sock, RelayProtocol(core, ipv6, stream), relay=True)
        else:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: RelayProtocol(core, ipv6, stream), sock=sock
            )
        port = sock.getsockname()[1]
        advertised = (self.addresses.advertised[family], port)
        return transport, advertised


def _try_bind(sock_family: int, ip: str, port: int) -> socket.socket | None:
    sock = socket.socket(sock_family, socket.SOCK_DGRAM)
    try:
        if sock_family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setblocking(False)
        sock.bind((ip, port))
    except OSError:
        sock.close()
        return None
    return sock


def _set_dont_fragment(sock: socket.socket, family: int) -> None:
    """Set DF on everything the relay sends (RFC 8656 §14.8), where the OS lets us."""
    try:
        if family == AddressFamily.IPV6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
    except (OSError, AttributeError):
        pass
