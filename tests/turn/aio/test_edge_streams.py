"""Limits on what TCP/TLS clients can make the edge hold: idle connections and their count."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from passage.stun import MessageClass
from passage.turn.aio import listeners
from passage_server import in_process


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
