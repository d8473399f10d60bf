"""SQLite unavailable (another process holds its write lock): the edge keeps at most
``--usage-buffer-records`` usage records in memory, spills the rest to the data
directory, says so in a WARNING line and in ``/metrics``, and once the store is back
(or at the next start, after a stop with the store still down) the ledger holds
exactly the bytes relayed."""

from __future__ import annotations

import logging
import socket
import sqlite3
import stat
from pathlib import Path

import aiohttp
import pytest

import passage.store.database
from metrics_scrape import scrape
from passage.store.database import open_database, sqlite_url
from passage.store.ledger import AllocationUsage, UsageLedger
from passage.store.spill import SPILL_FILE
from passage_server import Server, free_port, in_process
from turn_client import TurnClient, UdpPeer

BUFFER = 2
"""``--usage-buffer-records`` here: one allocation writes one record a flush."""
SIZE = 1000


async def relay(client: TurnClient, peer: UdpPeer) -> int:
    client.send_indication(peer.address, b"x" * SIZE)
    data, _ = await peer.receive()
    assert len(data) == SIZE
    return SIZE


def lock_the_store(server: Server) -> sqlite3.Connection:
    """What another writer holding SQLite's lock does to every write: "database is locked"."""
    holder = sqlite3.connect(server.datadir.path / "passage.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


async def test_a_locked_sqlite_store_spills_past_the_bound_and_every_byte_lands_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(passage.store.database, "SQLITE_BUSY_TIMEOUT_MS", 50)  # fail fast
    caplog.set_level(logging.WARNING)
    relayed = 0
    settings = {"usage_flush_interval": 3600.0, "usage_buffer_records": BUFFER}
    metrics_port = free_port((socket.SOCK_STREAM,))
    spill = tmp_path / "passage-data" / SPILL_FILE
    async with in_process(
        tmp_path, loopback_peers=True, metrics_port=metrics_port, **settings
    ) as server:
        edge = server.running.edge
        assert edge is not None and server.running.spill is not None
        waiting = server.running.spill
        peer = await UdpPeer.bind()
        client = await server.client("udp")
        await client.allocate()
        await client.create_permission(peer.address)
        relayed += await relay(client, peer)
        await edge.flush_usage()
        holder = lock_the_store(server)
        for _ in range(6):
            relayed += await relay(client, peer)
            await edge.flush_usage()
            assert edge.unsaved_records <= BUFFER  # bounded: the rest is on disk
        assert edge.flush_failures >= 6
        assert waiting.records >= 6 - BUFFER
        assert stat.S_IMODE(spill.stat().st_mode) == 0o600
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("moved from memory to the spill file" in line for line in warnings)
        async with aiohttp.ClientSession() as session:
            metrics = await scrape(session, f"http://127.0.0.1:{metrics_port}")
        assert metrics.value("passage_store_spill_waiting_records") == waiting.records
        assert metrics.value("passage_store_spilled_records_total") >= 6 - BUFFER
        holder.rollback()  # the store is back
        relayed += await relay(client, peer)
        await edge.flush_usage()
        assert not spill.exists() and edge.unsaved_records == 0
        assert await ledger_bytes(server) == relayed

        holder = lock_the_store(server)  # down again, and the server stops
        relayed += await relay(client, peer)
        await edge.flush_usage()
        await client.close()
        await peer.close()
    assert spill.exists()  # the stop's final records went to the spill, not to nowhere
    holder.rollback()
    holder.close()
    async with in_process(tmp_path, loopback_peers=True, **settings) as server:
        assert not spill.exists()  # written at the start
        assert await ledger_bytes(server) == relayed
    [allocation] = await allocations(tmp_path)
    assert allocation.end_reason == "refresh_zero"  # its final record came from the spill


async def ledger_bytes(server: Server) -> int:
    return sum(a.bytes_to_peer for a in await server.running.api.ledger.allocations())


async def allocations(tmp_path: Path) -> list[AllocationUsage]:
    database = await open_database(sqlite_url(tmp_path / "passage-data"))
    try:
        return await UsageLedger(database).allocations()
    finally:
        await database.close()
