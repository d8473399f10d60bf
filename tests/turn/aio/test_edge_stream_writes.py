"""Peer → TCP/TLS client: what a relay socket hands over during one event-loop pass
goes to the client in one transport write, in order, metered, and nothing of it is
lost when the connection closes.

A batch is fed the way the transport feeds one (the C router hands over the
datagrams of one ``recvmmsg`` in a row, uvloop up to 32 per readiness): the
allocation's real relay protocol gets them back to back, without yielding.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from passage.turn.aio import listeners
from passage.turn.aio.listeners import StreamClient
from passage.turn.aio.relay_sockets import RelayProtocol
from passage.turn.allocation import Allocation
from passage_server import in_process
from turn_client import NoAnswer, TurnClient, UdpPeer, error_code

CHANNEL = 0x4001
PAYLOADS = [bytes([index]) * (100 + index) for index in range(32)]
"""Lengths 100..131: every padding (0–3 bytes, RFC 8656 §12.5) occurs."""


class CountingTransport:
    """The stream's own transport, with its ``write`` calls counted."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


@dataclass
class Relay:
    client: TurnClient
    peer: UdpPeer
    stream: StreamClient
    allocation: Allocation
    protocol: RelayProtocol
    counting: CountingTransport

    def batch(self, payloads: list[bytes]) -> None:
        """Datagrams from the peer, handed to the relay protocol in one loop pass."""
        for payload in payloads:
            self.protocol.datagram_received(payload, self.peer.address)

    async def received(self, count: int) -> list[bytes]:
        frames = []
        for _ in range(count):
            relayed = await self.client.receive()
            assert relayed.channel == CHANNEL
            frames.append(relayed.data)
        return frames


@asynccontextmanager
async def relay(tmp_path: Path, transport: str) -> AsyncIterator[Relay]:
    """A TCP or TLS client with a channel to a UDP peer, its stream's writes counted."""
    async with in_process(tmp_path, loopback_peers=True, fast_path="off") as server:
        client = await server.client(transport)
        peer = await UdpPeer.bind()
        try:
            assert error_code(await client.allocate()) is None
            assert error_code(await client.channel_bind(CHANNEL, peer.address)) is None
            [stream] = server.running.edge.streams.values()
            assert stream.transport is not None and stream.allocation is not None
            allocation = stream.allocation
            [(relay_transport, _)] = allocation.relays.values()
            protocol = cast(RelayProtocol, relay_transport.get_protocol())  # type: ignore[attr-defined]
            counting = CountingTransport(stream.transport)
            stream.transport = cast(asyncio.Transport, counting)
            yield Relay(client, peer, stream, allocation, protocol, counting)
        finally:
            await client.close(release=False)
            await peer.close()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_a_batch_from_a_peer_reaches_the_client_in_one_write(
    tmp_path: Path, transport: str
) -> None:
    async with relay(tmp_path, transport) as r:
        r.batch(PAYLOADS)
        assert await r.received(len(PAYLOADS)) == PAYLOADS  # in order, byte for byte
        assert r.counting.writes == 1
        assert r.allocation.packets_from_peer == len(PAYLOADS)
        assert r.allocation.bytes_from_peer == sum(map(len, PAYLOADS))
        r.batch(PAYLOADS[:1])  # the next pass: a write of its own
        assert await r.received(1) == PAYLOADS[:1]
        assert r.counting.writes == 2


async def test_what_a_pass_gathered_is_sent_before_the_connection_closes(
    tmp_path: Path,
) -> None:
    """The server's stop closes each stream this way (``TurnEdge.stop``)."""
    async with relay(tmp_path, "tcp") as r:
        r.batch(PAYLOADS)
        r.stream.close()
        assert await r.received(len(PAYLOADS)) == PAYLOADS
        assert r.counting.writes == 1


async def test_the_backlog_limit_counts_the_gathered_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MAX_STREAM_BACKLOG`` bounds what one pass may gather for a client, too."""
    monkeypatch.setattr(listeners, "MAX_STREAM_BACKLOG", 10_000)
    payloads = [bytes([index]) * 1000 for index in range(30)]  # 1004-byte frames
    async with relay(tmp_path, "tcp") as r:
        r.batch(payloads)
        # Accepted while what is queued is at most the limit: 10 frames (0 … 9036 bytes).
        assert await r.received(10) == payloads[:10]
        with pytest.raises(NoAnswer):
            await r.client.receive(within=0.2)
        drops = r.stream.edge.core.metrics.drops
        assert drops["client_backlog"] == 20
        assert r.allocation.packets_from_peer == 30  # metered as relayed, as before
