"""Client-facing sockets: UDP, and TCP/TLS streams, on the TURN ports.

ChannelData from a client is told apart by its first byte (0x40–0x7F: RFC 8656
channels are 0x4000–0x4FFF, RFC 5766 ones reach 0x7FFF) and relayed here,
without the core: a dictionary look-up and a send. Everything else is a STUN
message for the core.
"""

from __future__ import annotations

import asyncio
from struct import Struct
from struct import error as struct_error
from typing import TYPE_CHECKING, Any, cast

from passage.addresses import Address, Transport
from passage.limiter import source_key
from passage.stun import StreamFramer, StunDecodeError
from passage.turn.errors import DropReason
from passage.turn.events import FiveTuple

if TYPE_CHECKING:
    from passage.turn.aio.edge import TurnEdge
    from passage.turn.allocation import Allocation

_unpack_channel_header = Struct("!HH").unpack_from
"""ChannelData header → (channel number, data length); one C call instead of four indexings."""

MAX_STREAM_BACKLOG = 1 << 20
"""Bytes queued for a slow TCP/TLS client before we drop what the relay has for it."""

STREAM_IDLE_TIMEOUT = 30.0
"""Seconds a TCP/TLS connection may stay open without an allocation."""

MAX_STREAMS = 20_000
"""TCP/TLS connections held at once, TLS handshakes included; more are closed as they open."""

MAX_STREAMS_PER_SOURCE = 2_000
"""TCP/TLS connections one source (an IPv4 address, an IPv6 /64) may hold at once, so
that one host cannot take all of ``MAX_STREAMS``; more are closed as soon as they open."""

TLS_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a TLS client has to finish its handshake before the connection is closed."""

ACCEPT_PAUSE = 0.1
"""Seconds the TLS accept loop waits after accept() fails (out of descriptors) before
trying again, so that a full descriptor table costs no CPU while other listeners serve."""


class UdpListener(asyncio.DatagramProtocol):
    """One UDP listening socket (default port 3478)."""

    def __init__(self, edge: TurnEdge, local: Address, ipv6: bool) -> None:
        self.edge = edge
        self.local = local
        self.ipv6 = ipv6
        self.allocations: dict[Address, Allocation] = {}
        """Client address → its allocation on this socket, for the ChannelData path."""
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # Hot path: one call per datagram; no cast() here, it is a call at run time.
        client: Address = addr[:2] if self.ipv6 else addr
        if data and 0x40 <= data[0] <= 0x7F:
            allocation = self.allocations.get(client)
            if allocation is None:
                self.edge.core.metrics.drops[DropReason.NO_ALLOCATION] += 1
            else:
                relay_channel_data(self.edge, allocation, data)
            return
        five_tuple = FiveTuple(Transport.UDP, client, self.local)
        self.edge.execute(self.edge.core.receive(data, five_tuple, self.edge.clock()))
        offload = self.edge.offload
        # A request (class bits C1 C0 = 0 0, RFC 8489 §5), a ChannelBind or Refresh among them,
        # may have changed the routes; Send indications, per-packet, cannot.
        if offload is not None and len(data) > 1 and not (data[0] & 0x01 or data[1] & 0x10):
            offload.request_done(self.allocations.get(client))

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP from a client that went away: nothing to do


class StreamClient(asyncio.Protocol):
    """One TCP or TLS client connection; it holds at most one allocation (RFC 8656 §3.1).

    A TLS connection was counted by the edge's accept loop before its handshake
    (``counted_source``); a TCP one is counted here, as it opens.
    """

    def __init__(
        self, edge: TurnEdge, transport_kind: Transport, counted_source: str | None = None
    ) -> None:
        self.edge = edge
        self.kind = transport_kind
        self.framer = StreamFramer()
        self.allocation: Allocation | None = None
        self.transport: asyncio.Transport | None = None
        self.five_tuple: FiveTuple | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._source = counted_source
        self._gathered: list[bytes] = []
        """Frames written during this event-loop pass, sent in one write by ``flush``."""
        self._gathered_size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if self._source is None:
            source = source_key(peer[0])
            refused = self.edge.refuse_stream(source)
            if refused is not None:
                self.edge.core.metrics.drops[refused] += 1
                transport.close()
                return
            self._source = source
            self.edge.streams_per_source[source] += 1
        local = transport.get_extra_info("sockname")
        self.five_tuple = FiveTuple(self.kind, (peer[0], peer[1]), (local[0], local[1]))
        self.edge.streams[self.five_tuple] = self
        self.watch_idle()

    def watch_idle(self) -> None:
        """Close this connection if it holds no allocation ``STREAM_IDLE_TIMEOUT`` from now."""
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(STREAM_IDLE_TIMEOUT, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self.allocation is None and self.transport is not None:
            self.edge.core.metrics.drops[DropReason.IDLE_CONNECTION] += 1
            self.close()

    def data_received(self, data: bytes) -> None:
        # Hot path: most reads are exactly one padded ChannelData frame (RFC 8656
        # §12.5) with nothing buffered; relay those without the framer's copies.
        # (The framer is only ever broken once the transport is closed: no more reads.)
        if data and 0x40 <= data[0] <= 0x7F and not self.framer.buffered:
            size = 4 + ((data[2] << 8) | data[3]) if len(data) >= 4 else 0
            if len(data) == size + (-size & 3):
                if self.allocation is None:
                    self.edge.core.metrics.drops[DropReason.NO_ALLOCATION] += 1
                else:
                    relay_channel_data(self.edge, self.allocation, data)
                return
        try:
            frames = self.framer.feed(data)
        except StunDecodeError:
            self.edge.core.metrics.drops[DropReason.STREAM_GARBAGE] += 1
            self.close()
            return
        five_tuple = self.five_tuple
        assert five_tuple is not None
        for frame in frames:
            if 0x40 <= frame[0] <= 0x7F:
                if self.allocation is None:
                    self.edge.core.metrics.drops[DropReason.NO_ALLOCATION] += 1
                else:
                    relay_channel_data(self.edge, self.allocation, frame)
            else:
                self.edge.execute(self.edge.core.receive(frame, five_tuple, self.edge.clock()))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        five_tuple, self.five_tuple = self.five_tuple, None
        if five_tuple is None:  # refused as it opened
            return
        self.edge.streams.pop(five_tuple, None)
        if self._source is not None:
            self.edge.uncount_stream(self._source)
        self.edge.execute(self.edge.core.client_closed(five_tuple, self.edge.clock()))

    def write(self, frame: bytes) -> None:
        """Send a frame to this client, unless it is too far behind (then drop, counted).

        Frames written during one event-loop pass (a batch of peer datagrams, the
        answers to a read of STUN requests) are gathered, in order, and go out in one
        transport write when the pass ends: one send() for the batch, not one each.
        The backlog limit counts the gathered bytes with the transport's buffer.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() + self._gathered_size > MAX_STREAM_BACKLOG:
            self.edge.core.metrics.drops[DropReason.CLIENT_BACKLOG] += 1
            return
        gathered = self._gathered
        if not gathered:
            asyncio.get_running_loop().call_soon(self.flush)
        gathered.append(frame)
        self._gathered_size += len(frame)

    def flush(self) -> None:
        """Write the frames gathered so far, in one transport write."""
        gathered = self._gathered
        if not gathered:
            return
        data = gathered[0] if len(gathered) == 1 else b"".join(gathered)
        gathered.clear()
        self._gathered_size = 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        """Send what this pass gathered, then close the connection (the transport
        sends what it holds before it closes)."""
        self.flush()
        if self.transport is not None:
            self.transport.close()


def relay_channel_data(edge: TurnEdge, allocation: Allocation, frame: bytes) -> None:
    """Client → peer for one ChannelData message (RFC 8656 §12.6): the hot path."""
    try:
        channel, size = _unpack_channel_header(frame)
    except struct_error:  # shorter than the 4-byte header
        channel, size = -1, 0
    route = allocation.routes.get(channel)
    if route is None:
        edge.core.metrics.drops[DropReason.NO_CHANNEL] += 1
        return
    if size > len(frame) - 4:
        edge.core.metrics.drops[DropReason.MALFORMED] += 1
        return
    budget = allocation.budget - size
    allocation.budget = budget
    if budget < 0:
        edge.core.metrics.drops[DropReason.BANDWIDTH_EXCEEDED] += 1
        return
    route[0].sendto(frame[4 : 4 + size], route[1])
    allocation.bytes_to_peer += size
    allocation.packets_to_peer += 1
