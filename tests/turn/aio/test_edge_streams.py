"""Limits on what TCP/TLS clients can make the edge hold: idle connections, TLS handshakes,
connections in all and per source, and bytes queued for a client that does not read."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from passage.stun import MessageClass
from passage.turn.aio import listeners
from passage_server import in_process
from turn_client import TurnClient, UdpPeer, error_code, relayed_addresses


async def closed_by_server(reader: asyncio.StreamReader, within: float = 5.0) -> bool:
    """True if the server closes the connection (EOF) within ``within`` seconds."""
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except TimeoutError:
        return False


async def test_connection_without_allocation_is_closed_after_the_idle_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listeners, "STREAM_IDLE_TIMEOUT", 0.3)
    async with in_process(tmp_path, loopback_peers=True) as server:
        reader, writer = await asyncio.open_connection(*server.address("tcp"))
        assert await closed_by_server(reader)
        writer.close()
        assert server.running.edge.core.metrics.drops["idle_connection_closed"] == 1


async def test_connection_holding_an_allocation_stays_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listeners, "STREAM_IDLE_TIMEOUT", 0.3)
    async with in_process(tmp_path, loopback_peers=True) as server:
        client = await server.client("tcp")
        assert (await client.allocate()).message_class is MessageClass.SUCCESS
        await asyncio.sleep(0.6)
        assert (await client.refresh(600)).message_class is MessageClass.SUCCESS
        await client.close()
        assert server.running.edge.core.metrics.drops["idle_connection_closed"] == 0


async def test_connections_over_the_limit_are_closed_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listeners, "MAX_STREAMS", 2)
    async with in_process(tmp_path, loopback_peers=True) as server:
        kept = [await asyncio.open_connection(*server.address("tcp")) for _ in range(2)]
        reader, writer = await asyncio.open_connection(*server.address("tcp"))
        assert await closed_by_server(reader)
        for _, held in kept:
            held.close()
        writer.close()
        assert server.running.edge.core.metrics.drops["too_many_connections"] == 1


# -- issue 10: TLS handshakes, connections per source, a client that does not read --


async def test_a_tls_client_that_never_finishes_its_handshake_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listeners, "TLS_HANDSHAKE_TIMEOUT", 0.3)
    async with in_process(tmp_path) as server:
        reader, writer = await asyncio.open_connection(*server.address("tls"))
        assert await closed_by_server(reader, within=3.0)  # asyncio's own default is 60 s
        writer.close()
        assert server.running.edge.core.metrics.drops["tls_handshake_failed"] == 1
        assert server.running.edge.streams == {}


async def test_tls_connections_are_counted_before_their_handshake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listeners, "MAX_STREAMS", 2)
    async with in_process(tmp_path) as server:
        kept = [await asyncio.open_connection(*server.address("tls")) for _ in range(2)]
        reader, writer = await asyncio.open_connection(*server.address("tls"))
        assert await closed_by_server(reader)
        for _, held in kept:
            held.close()
        writer.close()
        assert server.running.edge.core.metrics.drops["too_many_connections"] == 1
        # Once they are gone, a real TLS client gets in and allocates.
        await asyncio.sleep(0.2)
        client = await server.client("tls")
        assert (await client.allocate()).message_class is MessageClass.SUCCESS
        await client.close()


async def test_connections_from_one_source_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listeners, "MAX_STREAMS_PER_SOURCE", 2)
    async with in_process(tmp_path) as server:
        address = server.address("tcp")
        kept = [await asyncio.open_connection(*address) for _ in range(2)]
        reader, writer = await asyncio.open_connection(*address)
        assert await closed_by_server(reader)
        other = await asyncio.open_connection(*address, local_addr=("127.0.0.2", 0))
        assert not await closed_by_server(other[0], within=0.3)  # another source gets in
        for _, held in [*kept, other]:
            held.close()
        writer.close()
        drops = server.running.edge.core.metrics.drops
        assert drops["too_many_connections_from_source"] == 1
        await asyncio.sleep(0.2)
        assert server.running.edge.streams_per_source == {}


async def test_relayed_data_for_a_client_that_does_not_read_is_dropped_not_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MAX_STREAM_BACKLOG``: the server's memory for one slow client stays bounded."""
    backlog = 64 * 1024
    monkeypatch.setattr(listeners, "MAX_STREAM_BACKLOG", backlog)
    async with in_process(tmp_path, loopback_peers=True) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client = await TurnClient.connect("tcp", server.address("tcp"), sock=sock)
        peer = await UdpPeer.bind()
        try:
            relayed = relayed_addresses(await client.allocate())[0]
            assert error_code(await client.channel_bind(0x4000, peer.address)) is None
            client._transport.pause_reading()  # type: ignore[union-attr]
            [stream] = server.running.edge.streams.values()
            largest = 0
            for _ in range(40):
                for _ in range(100):
                    peer.sendto(b"x" * 1000, relayed)
                await asyncio.sleep(0.01)
                assert stream.transport is not None
                largest = max(largest, stream.transport.get_write_buffer_size())
            assert server.running.edge.core.metrics.drops["client_backlog"] > 0
            assert largest <= backlog + 1100  # one frame past the mark, at most
        finally:
            await client.close(release=False)
            await peer.close()
